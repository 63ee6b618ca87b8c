/*
 * evpop3d - connlimit.h: connection counts shared by all worker processes,
 * so that max_connections and max_connections_per_ip hold for the whole
 * daemon, not per worker.  The table lives in shared memory set up before
 * the workers are forked; each worker's share of every count is kept apart
 * so that the supervisor can take back exactly what a dead worker held.
 */
#ifndef EVPOP3D_CONNLIMIT_H
#define EVPOP3D_CONNLIMIT_H

#include <sys/socket.h>

#define CONNLIMIT_OK		0
#define CONNLIMIT_TOTAL		1	/* max_connections reached */
#define CONNLIMIT_PER_IP	2	/* max_connections_per_ip reached */

/*
 * Set up counts for nworkers processes and room for naddrs client
 * addresses at once (more addresses than that are counted in the total
 * only, and logged).  Call once, before fork.  Returns 0 or -1.
 */
int	connlimit_init(unsigned int nworkers, unsigned int naddrs);

/* This process is worker w (0-based): its counts go in its own column. */
void	connlimit_set_worker(unsigned int w);

/*
 * Count a new connection from sa unless that would pass max_total, or
 * (max_per_ip > 0) put more than max_per_ip connections on its address.
 * Check and count are one atomic step across processes.  Returns
 * CONNLIMIT_OK (counted) or the limit that refused it (not counted).
 */
int	connlimit_add(const struct sockaddr *sa, unsigned int max_total,
	    unsigned int max_per_ip);

/* A counted connection turned out to come from another address (PROXY
 * header): move it.  Returns the connections now counted on the new
 * address, this one included. */
unsigned int connlimit_move(const struct sockaddr *from,
	    const struct sockaddr *to);

/* A counted connection from sa ended. */
void	connlimit_del(const struct sockaddr *sa);

/* Connections counted by the whole daemon. */
unsigned int connlimit_total(void);

/* Connections counted on sa's address by the whole daemon. */
unsigned int connlimit_count(const struct sockaddr *sa);

/* Supervisor: worker w is gone; forget every connection it counted. */
void	connlimit_reset_worker(unsigned int w);

void	connlimit_free(void);

#endif /* EVPOP3D_CONNLIMIT_H */
