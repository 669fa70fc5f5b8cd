// libmicrohttpd through a few non-variadic wrappers: MHD_start_daemon and MHD_get_daemon_info
// take varargs, which Swift cannot call.
#ifndef STEWARD_MHD_SHIM_H
#define STEWARD_MHD_SHIM_H

#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <string.h>
#include <microhttpd.h>

/// Starts a daemon on `host` (an IPv4 address) and `port` (0: the system picks a free one).
/// One thread per connection, so a streaming response's reader may block waiting for the next
/// chunk. Returns NULL when the address is not IPv4 text or the socket cannot be bound.
static inline struct MHD_Daemon *
steward_mhd_start(const char *host, uint16_t port,
                  MHD_AccessHandlerCallback handler, void *handler_cls,
                  MHD_RequestCompletedCallback completed, void *completed_cls,
                  unsigned int connection_timeout_seconds, size_t thread_stack_size)
{
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) return NULL;
    // MHD binds inside MHD_start_daemon, so the address may live on this stack.
    return MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION
                                | MHD_USE_ITC | MHD_USE_AUTO,
                            port, NULL, NULL, handler, handler_cls,
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                            MHD_OPTION_NOTIFY_COMPLETED, completed, completed_cls,
                            MHD_OPTION_CONNECTION_TIMEOUT, connection_timeout_seconds,
                            MHD_OPTION_THREAD_STACK_SIZE, thread_stack_size,
                            MHD_OPTION_END);
}

/// True when this libmicrohttpd was built with TLS (GnuTLS), so HTTPS can be served.
static inline int steward_mhd_has_tls(void)
{
    return MHD_is_feature_supported(MHD_FEATURE_TLS) == MHD_YES;
}

/// As steward_mhd_start, serving HTTPS with a PEM certificate (chain) and private key held in
/// memory (libmicrohttpd copies neither: they must outlive the daemon). NULL when the address
/// is bad, the socket cannot be bound, or GnuTLS rejects the certificate or key.
static inline struct MHD_Daemon *
steward_mhd_start_tls(const char *host, uint16_t port,
                      MHD_AccessHandlerCallback handler, void *handler_cls,
                      MHD_RequestCompletedCallback completed, void *completed_cls,
                      unsigned int connection_timeout_seconds, size_t thread_stack_size,
                      const char *cert_pem, const char *key_pem)
{
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) return NULL;
    return MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION
                                | MHD_USE_ITC | MHD_USE_AUTO | MHD_USE_TLS,
                            port, NULL, NULL, handler, handler_cls,
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                            MHD_OPTION_NOTIFY_COMPLETED, completed, completed_cls,
                            MHD_OPTION_CONNECTION_TIMEOUT, connection_timeout_seconds,
                            MHD_OPTION_THREAD_STACK_SIZE, thread_stack_size,
                            MHD_OPTION_HTTPS_MEM_CERT, cert_pem,
                            MHD_OPTION_HTTPS_MEM_KEY, key_pem,
                            MHD_OPTION_END);
}

/// The port the daemon listens on (the one the system picked for port 0); 0 if unknown.
static inline uint16_t steward_mhd_port(struct MHD_Daemon *daemon)
{
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(daemon, MHD_DAEMON_INFO_BIND_PORT);
    return info ? info->port : 0;
}

/// Streams send one small write per token: without TCP_NODELAY, Nagle's algorithm holds each
/// until the client's (delayed) ACK of the previous one, adding up to ~40 ms per chunk.
static inline void steward_mhd_nodelay(struct MHD_Connection *connection)
{
    const union MHD_ConnectionInfo *info = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (info) {
        int one = 1;
        (void)setsockopt(info->connect_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
}

#endif
