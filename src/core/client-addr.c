#include "core/client-addr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

void client_addr_key(const char *addr, char *buf, size_t size)
{
	struct in6_addr a6;
	char text[INET6_ADDRSTRLEN];
	snprintf(buf, size, "%s", addr);
	if (inet_pton(AF_INET6, addr, &a6) != 1)
		return;
	if (IN6_IS_ADDR_V4MAPPED(&a6)) {
		if (inet_ntop(AF_INET, &a6.s6_addr[12], text, sizeof(text)) != NULL)
			snprintf(buf, size, "%s", text);
		return;
	}
	memset(&a6.s6_addr[8], 0, 8);
	if (inet_ntop(AF_INET6, &a6, text, sizeof(text)) != NULL)
		snprintf(buf, size, "%s/64", text);
}
