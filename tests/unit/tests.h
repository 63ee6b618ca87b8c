/*
 * evpop3d unit tests: each tests/unit/test_<module>.c defines one
 * test_<module>_register() that adds its CUnit suite(s).
 */
#ifndef EVPOP3D_TESTS_H
#define EVPOP3D_TESTS_H

#include <CUnit/CUnit.h>

void	test_util_register(void);
void	test_conf_register(void);
void	test_msgfmt_register(void);
void	test_maildir_register(void);
void	test_auth_register(void);
void	test_lock_register(void);
void	test_worker_register(void);
void	test_cmd_register(void);
void	test_penalty_register(void);
void	test_sizecache_register(void);
void	test_proxy_register(void);
void	test_connlimit_register(void);
void	test_oauth_register(void);
void	test_migrate_register(void);

/* Make a fresh temporary directory (mkdtemp under $TMPDIR or /tmp); the
 * returned path is static storage overwritten by the next call.  Aborts the
 * test binary on failure. */
const char *test_tmpdir(void);
/* rm -rf path (best effort). */
void	test_rmtree(const char *path);
/* Write len octets to path (creating/truncating); returns 0 or -1. */
int	test_write_file(const char *path, const void *data, size_t len);

#endif
