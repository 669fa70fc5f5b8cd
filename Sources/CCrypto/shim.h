#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/pem.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

// BIO_get_mem_data is a macro over BIO_ctrl; Swift cannot import it.
static inline long steward_bio_mem_data(BIO *bio, char **data) { return BIO_get_mem_data(bio, data); }
