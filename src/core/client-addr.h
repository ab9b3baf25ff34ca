/* How a client address is counted by every per-client limit (pre-login
 * connections, password-check penalties and queues): one host commonly owns
 * a whole IPv6 /64 and could take a fresh address for every connection. */
#ifndef TERN_CORE_CLIENT_ADDR_H
#define TERN_CORE_CLIENT_ADDR_H

#include <stddef.h>

/* An IPv4 address as it is (also when IPv4-mapped), an IPv6 address as its
 * /64 ("2001:db8:1:2::/64"); text that is not an address is kept as it is. */
void client_addr_key(const char *addr, char *buf, size_t size);

#endif
