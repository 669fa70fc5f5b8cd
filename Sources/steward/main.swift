import StewardCLI
