/*
 * evpop3d unit test runner (CUnit).  Exit status is the number of failed
 * assertions capped at 1, never CU_get_error() (which is 0 even when tests
 * fail).  Run one suite with: unit_tests SUITE
 */
#include "config.h"

#include <sys/stat.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <CUnit/Basic.h>

#include "tests.h"

const char *
test_tmpdir(void)
{
	static char path[512];
	const char *base = getenv("TMPDIR");

	snprintf(path, sizeof(path), "%s/evpop3d-unit-XXXXXX",
	    base != NULL ? base : "/tmp");
	if (mkdtemp(path) == NULL) {
		perror("mkdtemp");
		abort();
	}
	return path;
}

void
test_rmtree(const char *path)
{
	DIR *d;
	struct dirent *de;
	char sub[1024];
	struct stat st;

	if (lstat(path, &st) == -1)
		return;
	if (!S_ISDIR(st.st_mode)) {
		unlink(path);
		return;
	}
	if ((d = opendir(path)) != NULL) {
		while ((de = readdir(d)) != NULL) {
			if (strcmp(de->d_name, ".") == 0 ||
			    strcmp(de->d_name, "..") == 0)
				continue;
			snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
			test_rmtree(sub);
		}
		closedir(d);
	}
	rmdir(path);
}

int
test_write_file(const char *path, const void *data, size_t len)
{
	int fd;
	ssize_t n;

	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600)) == -1)
		return -1;
	n = write(fd, data, len);
	close(fd);
	return n == (ssize_t)len ? 0 : -1;
}

int
main(int argc, char *argv[])
{
	unsigned int failures;
	CU_pSuite s;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 2;
	test_util_register();
	test_conf_register();
	test_msgfmt_register();
	test_maildir_register();
	test_auth_register();
	test_lock_register();
	test_worker_register();
	test_cmd_register();
	test_penalty_register();
	test_sizecache_register();
	test_proxy_register();
	test_connlimit_register();
	test_oauth_register();
	test_migrate_register();

	CU_basic_set_mode(CU_BRM_VERBOSE);
	if (argc > 1) {
		if ((s = CU_get_suite(argv[1])) == NULL) {
			fprintf(stderr, "no suite %s\n", argv[1]);
			CU_cleanup_registry();
			return 2;
		}
		CU_basic_run_suite(s);
	} else
		CU_basic_run_tests();
	failures = CU_get_number_of_failures() + CU_get_number_of_tests_failed() +
	    CU_get_number_of_suites_failed();
	CU_cleanup_registry();
	return failures != 0;
}
