/*
 * evpop3d - proxy.h: the HAProxy PROXY protocol header, versions 1 (text)
 * and 2 (binary), as sent by HAProxy's send-proxy / send-proxy-v2 before
 * any byte of the client's.  Pure: no libevent.
 */
#ifndef EVPOP3D_PROXY_H
#define EVPOP3D_PROXY_H

#include <sys/socket.h>
#include <stddef.h>

/* Longest header accepted: v1 is at most 107 octets; v2 is 16 plus its
 * addresses and TLVs, which HAProxy keeps small. */
#define PROXY_HEADER_MAX	(16 + 2048)

enum proxy_result {
	PROXY_BAD = -1,		/* not a valid header: close the connection */
	PROXY_MORE = 0,		/* a valid beginning: read more */
	PROXY_OK = 1
};

struct proxy_info {
	int			 local;	/* LOCAL / UNKNOWN: no client address
					   (health check): keep the proxy's */
	struct sockaddr_storage	 src;	/* the client, when !local */
	socklen_t		 srclen;
};

/*
 * Parse the header at the start of buf (len octets received so far).  On
 * PROXY_OK, *used is the header's length and info is filled in.
 */
enum proxy_result proxy_parse(const unsigned char *buf, size_t len,
	    size_t *used, struct proxy_info *info);

/* Could buf (len octets) be the start of a PROXY header of either
 * version?  (To refuse one from an address not in proxy_protocol_from.) */
int	proxy_looks_like(const unsigned char *buf, size_t len);

#endif /* EVPOP3D_PROXY_H */
