/* SPDX-License-Identifier: ISC */
/*
 * evpop3d unit tests for conf.c: every key with good and bad values,
 * defaults, duplicates, "FILE:LINE: problem" messages, listeners (IPv4,
 * IPv6, defaults), file checks, mail_location expansion and the
 * proxy_protocol_from CIDR matching (IPv4, IPv6, mapped addresses).
 */
#include "config.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <CUnit/CUnit.h>

#include "conf.h"
#include "tests.h"

#define TEST_CONF_BASE	"passwd_file /etc/passwd\nmail_location /m/%u\n"

static char test_conf_err[512];
static char test_conf_warn[512];

/* Parse text as "t.conf". */
static struct config *
test_conf_parse(const char *text)
{
	return conf_parse("t.conf", text, strlen(text), test_conf_err,
	    sizeof(test_conf_err), test_conf_warn, sizeof(test_conf_warn));
}

/* Parse TEST_CONF_BASE followed by extra (so extra starts on line 3). */
static struct config *
test_conf_with(const char *extra)
{
	char text[2048];

	snprintf(text, sizeof(text), "%s%s", TEST_CONF_BASE, extra);
	return test_conf_parse(text);
}

/* Expect extra (after the two base lines) to fail with exactly msg. */
static void
test_conf_expect_err(const char *extra, const char *msg)
{
	struct config *cf;

	cf = test_conf_with(extra);
	CU_ASSERT_PTR_NULL(cf);
	CU_ASSERT_STRING_EQUAL(test_conf_err, msg);
	if (cf != NULL || strcmp(test_conf_err, msg) != 0)
		fprintf(stderr, "\n  input %s\n  got \"%s\"\n  want \"%s\"\n",
		    extra, test_conf_err, msg);
	conf_free(cf);
}

/* Expect extra to fail; the message must start with "t.conf:3: ". */
static void
test_conf_expect_bad(const char *extra)
{
	struct config *cf;

	cf = test_conf_with(extra);
	CU_ASSERT_PTR_NULL(cf);
	CU_ASSERT(strncmp(test_conf_err, "t.conf:3: ", 10) == 0);
	if (cf != NULL || strncmp(test_conf_err, "t.conf:3: ", 10) != 0)
		fprintf(stderr, "\n  input %s accepted or bad message \"%s\"\n",
		    extra, test_conf_err);
	conf_free(cf);
}

/* Parse extra and return the value of an unsigned field (or ~0u). */
static unsigned int
test_conf_uint(const char *extra, size_t off)
{
	struct config *cf;
	unsigned int v = ~0u;

	if ((cf = test_conf_with(extra)) != NULL) {
		v = *(unsigned int *)(void *)((char *)cf + off);
		conf_free(cf);
	} else
		fprintf(stderr, "\n  %s: %s\n", extra, test_conf_err);
	return v;
}

static void
test_conf_defaults(void)
{
	struct config *cf;
	const struct sockaddr_in *sin;

	cf = test_conf_parse(TEST_CONF_BASE);
	CU_ASSERT_PTR_NOT_NULL_FATAL(cf);
	CU_ASSERT_STRING_EQUAL(test_conf_warn, "");
	CU_ASSERT_STRING_EQUAL(cf->path, "t.conf");
	CU_ASSERT_STRING_EQUAL(cf->passwd_file, "/etc/passwd");
	CU_ASSERT_STRING_EQUAL(cf->mail_location, "/m/%u");
	CU_ASSERT_EQUAL_FATAL(cf->nlistens, 1);
	CU_ASSERT_EQUAL(cf->listens[0].tls, 0);
	CU_ASSERT_STRING_EQUAL(cf->listens[0].text, "0.0.0.0:110");
	sin = (const struct sockaddr_in *)&cf->listens[0].ss;
	CU_ASSERT_EQUAL(sin->sin_family, AF_INET);
	CU_ASSERT_EQUAL(ntohs(sin->sin_port), 110);
	CU_ASSERT_EQUAL(sin->sin_addr.s_addr, htonl(INADDR_ANY));
	CU_ASSERT_EQUAL(cf->listens[0].sslen, sizeof(struct sockaddr_in));
	CU_ASSERT_PTR_NULL(cf->tls_cert);
	CU_ASSERT_PTR_NULL(cf->tls_key);
	CU_ASSERT_EQUAL(cf->allow_plaintext, CONF_PLAINTEXT_LOCAL);
	CU_ASSERT_EQUAL(cf->idle_timeout, 600);
	CU_ASSERT_EQUAL(cf->auth_fail_delay_ms, 1000);
	CU_ASSERT_EQUAL(cf->max_connections, 10000);
	CU_ASSERT_EQUAL(cf->max_connections_per_ip, 0);
	CU_ASSERT_EQUAL(cf->workers, 0);
	CU_ASSERT_EQUAL(cf->nproxy_from, 0);
	CU_ASSERT_PTR_NULL(cf->dovecot_uidl_format);
	CU_ASSERT_PTR_NULL(cf->user);
	CU_ASSERT_PTR_NULL(cf->group);
	CU_ASSERT_EQUAL(cf->lock_stale_timeout, 300);
	CU_ASSERT_EQUAL(cf->login_delay, 0);
	CU_ASSERT_EQUAL(cf->log_debug, 0);
	conf_free(cf);
}

static void
test_conf_all_keys(void)
{
	static const char text[] =
	    "# every key\n"
	    "listen 127.0.0.1:1110\n"
	    "listen_tls [::1]:1995\n"
	    "listen [::]:110\n"
	    "tls_cert /etc/ssl/c.pem\n"
	    "tls_key /etc/ssl/k.pem\n"
	    "passwd_file /etc/evpop3d/passwd\n"
	    "mail_location /var/mail/%d/%n/Maildir\n"
	    "allow_plaintext no\n"
	    "idle_timeout 900\n"
	    "auth_fail_delay_ms 250\n"
	    "max_connections 500\n"
	    "max_connections_per_ip 20\n"
	    "workers 4\n"
	    "proxy_protocol_from 10.0.0.0/8 192.168.1.1\n"
	    "proxy_protocol_from 2001:db8::/32\n"
	    "dovecot_uidl_format %08Xu%08Xv\n"
	    "user _pop\n"
	    "group _pop\n"
	    "lock_stale_timeout 120\n"
	    "login_delay 60\n"
	    "log_level debug\n";
	struct config *cf;
	const struct sockaddr_in *sin;
	const struct sockaddr_in6 *sin6;

	cf = test_conf_parse(text);
	CU_ASSERT_PTR_NOT_NULL_FATAL(cf);
	CU_ASSERT_STRING_EQUAL(test_conf_warn, "");
	CU_ASSERT_EQUAL_FATAL(cf->nlistens, 3);
	sin = (const struct sockaddr_in *)&cf->listens[0].ss;
	CU_ASSERT_EQUAL(sin->sin_family, AF_INET);
	CU_ASSERT_EQUAL(ntohs(sin->sin_port), 1110);
	CU_ASSERT_EQUAL(sin->sin_addr.s_addr, htonl(INADDR_LOOPBACK));
	CU_ASSERT_EQUAL(cf->listens[0].tls, 0);
	CU_ASSERT_STRING_EQUAL(cf->listens[0].text, "127.0.0.1:1110");
	sin6 = (const struct sockaddr_in6 *)&cf->listens[1].ss;
	CU_ASSERT_EQUAL(sin6->sin6_family, AF_INET6);
	CU_ASSERT_EQUAL(ntohs(sin6->sin6_port), 1995);
	CU_ASSERT(memcmp(&sin6->sin6_addr, &in6addr_loopback,
	    sizeof(in6addr_loopback)) == 0);
	CU_ASSERT_EQUAL(cf->listens[1].sslen, sizeof(struct sockaddr_in6));
	CU_ASSERT_EQUAL(cf->listens[1].tls, 1);
	CU_ASSERT_STRING_EQUAL(cf->listens[1].text, "[::1]:1995");
	sin6 = (const struct sockaddr_in6 *)&cf->listens[2].ss;
	CU_ASSERT_EQUAL(sin6->sin6_family, AF_INET6);
	CU_ASSERT(memcmp(&sin6->sin6_addr, &in6addr_any,
	    sizeof(in6addr_any)) == 0);
	CU_ASSERT_EQUAL(cf->listens[2].tls, 0);
	CU_ASSERT_STRING_EQUAL(cf->tls_cert, "/etc/ssl/c.pem");
	CU_ASSERT_STRING_EQUAL(cf->tls_key, "/etc/ssl/k.pem");
	CU_ASSERT_STRING_EQUAL(cf->passwd_file, "/etc/evpop3d/passwd");
	CU_ASSERT_STRING_EQUAL(cf->mail_location, "/var/mail/%d/%n/Maildir");
	CU_ASSERT_EQUAL(cf->allow_plaintext, CONF_PLAINTEXT_NO);
	CU_ASSERT_EQUAL(cf->idle_timeout, 900);
	CU_ASSERT_EQUAL(cf->auth_fail_delay_ms, 250);
	CU_ASSERT_EQUAL(cf->max_connections, 500);
	CU_ASSERT_EQUAL(cf->max_connections_per_ip, 20);
	CU_ASSERT_EQUAL(cf->workers, 4);
	CU_ASSERT_EQUAL_FATAL(cf->nproxy_from, 3);
	CU_ASSERT_EQUAL(cf->proxy_from[0].family, AF_INET);
	CU_ASSERT_EQUAL(cf->proxy_from[0].prefix, 8);
	CU_ASSERT_EQUAL(cf->proxy_from[1].prefix, 32);
	CU_ASSERT_EQUAL(cf->proxy_from[2].family, AF_INET6);
	CU_ASSERT_EQUAL(cf->proxy_from[2].prefix, 32);
	CU_ASSERT_STRING_EQUAL(cf->dovecot_uidl_format, "%08Xu%08Xv");
	CU_ASSERT_STRING_EQUAL(cf->user, "_pop");
	CU_ASSERT_STRING_EQUAL(cf->group, "_pop");
	CU_ASSERT_EQUAL(cf->lock_stale_timeout, 120);
	CU_ASSERT_EQUAL(cf->login_delay, 60);
	CU_ASSERT_EQUAL(cf->log_debug, 1);
	conf_free(cf);
}

static void
test_conf_comments_blanks(void)
{
	static const char text[] =
	    "# a comment\n"
	    "\n"
	    "   \t \n"
	    "\t# indented comment\n"
	    "passwd_file /etc/pw#not-a-comment # this is one\n"
	    "  mail_location\t/m/%u   \n"
	    "user pop\t#trailing\r\n"
	    "group pop";	/* no final newline */
	struct config *cf;

	cf = test_conf_parse(text);
	CU_ASSERT_PTR_NOT_NULL_FATAL(cf);
	CU_ASSERT_STRING_EQUAL(cf->passwd_file, "/etc/pw#not-a-comment");
	CU_ASSERT_STRING_EQUAL(cf->mail_location, "/m/%u");
	CU_ASSERT_STRING_EQUAL(cf->user, "pop");
	CU_ASSERT_STRING_EQUAL(cf->group, "pop");
	conf_free(cf);

	/* Paths may contain inner blanks. */
	cf = test_conf_with("tls_cert /etc/my certs/c.pem\n"
	    "tls_key /k.pem\n");
	CU_ASSERT_PTR_NOT_NULL_FATAL(cf);
	CU_ASSERT_STRING_EQUAL(cf->tls_cert, "/etc/my certs/c.pem");
	conf_free(cf);

	/* CRLF files work. */
	cf = test_conf_parse("passwd_file /p\r\nmail_location /m/%n\r\n"
	    "idle_timeout 700\r\n");
	CU_ASSERT_PTR_NOT_NULL_FATAL(cf);
	CU_ASSERT_STRING_EQUAL(cf->passwd_file, "/p");
	CU_ASSERT_EQUAL(cf->idle_timeout, 700);
	conf_free(cf);
}

static void
test_conf_errors_name_line(void)
{
	static const char text[] = "# x\n\npasswd_file /p\n"
	    "mail_location /m/%u\n\n\nlisen 1.2.3.4:110\n";
	struct config *cf;

	cf = conf_parse("evpop3d.conf", text, sizeof(text) - 1, test_conf_err,
	    sizeof(test_conf_err), NULL, 0);
	CU_ASSERT_PTR_NULL(cf);
	CU_ASSERT_STRING_EQUAL(test_conf_err,
	    "evpop3d.conf:7: unknown key \"lisen\"");
	test_conf_expect_err("\nidle_timeout abc\n",
	    "t.conf:4: idle_timeout: \"abc\" is not a number");
	test_conf_expect_err("Listen 1.2.3.4:110\n",
	    "t.conf:3: unknown key \"Listen\"");
	/* Untrusted text in messages is escaped. */
	test_conf_expect_err("bad\x1bkey 1\n",
	    "t.conf:3: control character 0x1b");
	test_conf_expect_err("idle_timeout 1\x7f\n",
	    "t.conf:3: control character 0x7f");
	test_conf_expect_err("k\xff 1\n", "t.conf:3: unknown key \"k\\xff\"");

	cf = test_conf_parse("mail_location /m/%u\n");
	CU_ASSERT_PTR_NULL(cf);
	CU_ASSERT_STRING_EQUAL(test_conf_err,
	    "t.conf: passwd_file is required");
	cf = test_conf_parse("passwd_file /p\n");
	CU_ASSERT_PTR_NULL(cf);
	CU_ASSERT_STRING_EQUAL(test_conf_err,
	    "t.conf: mail_location is required");
	cf = test_conf_parse("");
	CU_ASSERT_PTR_NULL(cf);

	/* A NUL byte is reported with its line. */
	cf = conf_parse("t.conf", TEST_CONF_BASE "user a\0b\n",
	    sizeof(TEST_CONF_BASE "user a\0b\n") - 1, test_conf_err,
	    sizeof(test_conf_err), NULL, 0);
	CU_ASSERT_PTR_NULL(cf);
	CU_ASSERT_STRING_EQUAL(test_conf_err, "t.conf:3: NUL byte in the file");

	/* A tiny err buffer is still NUL-terminated; NULL err is allowed. */
	cf = conf_parse("t.conf", "x 1\n", 4, test_conf_err, 5, NULL, 0);
	CU_ASSERT_PTR_NULL(cf);
	CU_ASSERT_STRING_EQUAL(test_conf_err, "t.co");
	CU_ASSERT_PTR_NULL(conf_parse("t.conf", "x 1\n", 4, NULL, 0, NULL, 0));
}

static void
test_conf_empty_values(void)
{
	test_conf_expect_err("tls_cert\n", "t.conf:3: tls_cert: missing value");
	test_conf_expect_err("tls_cert   # c\n",
	    "t.conf:3: tls_cert: missing value");
	test_conf_expect_err("listen \t \n", "t.conf:3: listen: missing value");
	test_conf_expect_err("proxy_protocol_from\n",
	    "t.conf:3: proxy_protocol_from: missing value");
	test_conf_expect_err("dovecot_uidl_format\n",
	    "t.conf:3: dovecot_uidl_format: missing value");
	test_conf_expect_err("user #x\n", "t.conf:3: user: missing value");
}

static void
test_conf_duplicates(void)
{
	static const char *const once[] = {
		"tls_cert /a", "tls_key /a", "allow_plaintext yes",
		"idle_timeout 700", "auth_fail_delay_ms 1",
		"max_connections 1", "max_connections_per_ip 1", "workers 1",
		"dovecot_uidl_format %f", "user a", "group a",
		"lock_stale_timeout 10", "login_delay 1", "log_level info",
	};
	char text[256], want[256], key[64];
	struct config *cf;
	size_t i;

	test_conf_expect_err("passwd_file /q\n",
	    "t.conf:3: passwd_file given twice (first on line 1)");
	test_conf_expect_err("\nmail_location /x/%u\n",
	    "t.conf:4: mail_location given twice (first on line 2)");
	for (i = 0; i < sizeof(once) / sizeof(once[0]); i++) {
		snprintf(text, sizeof(text), "%s\n%s\n", once[i], once[i]);
		sscanf(once[i], "%63s", key);
		snprintf(want, sizeof(want),
		    "t.conf:4: %s given twice (first on line 3)", key);
		test_conf_expect_err(text, want);
	}
	/* The repeatable keys add up. */
	cf = test_conf_with("listen 127.0.0.1:1\nlisten 127.0.0.1:2\n"
	    "proxy_protocol_from 10.0.0.1\nproxy_protocol_from 10.0.0.2\n");
	CU_ASSERT_PTR_NOT_NULL_FATAL(cf);
	CU_ASSERT_EQUAL(cf->nlistens, 2);
	CU_ASSERT_EQUAL(cf->nproxy_from, 2);
	conf_free(cf);
}

static void
test_conf_numbers(void)
{
	static const struct {
		const char	*key;
		size_t		 off;
		unsigned int	 min, max;
	} keys[] = {
		{ "idle_timeout", offsetof(struct config, idle_timeout),
		  1, 86400 },
		{ "auth_fail_delay_ms",
		  offsetof(struct config, auth_fail_delay_ms), 0, 60000 },
		{ "max_connections", offsetof(struct config, max_connections),
		  1, 1000000 },
		{ "max_connections_per_ip",
		  offsetof(struct config, max_connections_per_ip), 0, 1000000 },
		{ "lock_stale_timeout",
		  offsetof(struct config, lock_stale_timeout), 10, 86400 },
		{ "login_delay", offsetof(struct config, login_delay),
		  0, 86400 },
	};
	static const char *const junk[] = {
		"abc", "+1", "-1", "0x10", "1x", "1.5", "99999999999999999999",
		"1 2",
	};
	char text[128], want[256];
	size_t i, j;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		snprintf(text, sizeof(text), "%s %u\n", keys[i].key,
		    keys[i].min);
		CU_ASSERT_EQUAL(test_conf_uint(text, keys[i].off),
		    keys[i].min);
		snprintf(text, sizeof(text), "%s %u\n", keys[i].key,
		    keys[i].max);
		CU_ASSERT_EQUAL(test_conf_uint(text, keys[i].off),
		    keys[i].max);
		snprintf(text, sizeof(text), "%s %u\n", keys[i].key,
		    keys[i].max + 1);
		snprintf(want, sizeof(want),
		    "t.conf:3: %s: %u is out of range (%u..%u)", keys[i].key,
		    keys[i].max + 1, keys[i].min, keys[i].max);
		test_conf_expect_err(text, want);
		if (keys[i].min > 0) {
			snprintf(text, sizeof(text), "%s %u\n", keys[i].key,
			    keys[i].min - 1);
			snprintf(want, sizeof(want),
			    "t.conf:3: %s: %u is out of range (%u..%u)",
			    keys[i].key, keys[i].min - 1, keys[i].min,
			    keys[i].max);
			test_conf_expect_err(text, want);
		}
		for (j = 0; j < sizeof(junk) / sizeof(junk[0]); j++) {
			snprintf(text, sizeof(text), "%s %s\n", keys[i].key,
			    junk[j]);
			test_conf_expect_bad(text);
		}
	}
	test_conf_expect_err("max_connections 1e3\n",
	    "t.conf:3: max_connections: \"1e3\" is not a number");
}

static void
test_conf_idle_warning(void)
{
	struct config *cf;

	cf = test_conf_with("\nidle_timeout 2\n");
	CU_ASSERT_PTR_NOT_NULL_FATAL(cf);
	CU_ASSERT_EQUAL(cf->idle_timeout, 2);
	CU_ASSERT(strncmp(test_conf_warn, "t.conf:4: idle_timeout 2", 24) == 0);
	CU_ASSERT(strstr(test_conf_warn, "600") != NULL);
	conf_free(cf);
	cf = test_conf_with("idle_timeout 599\n");
	CU_ASSERT_PTR_NOT_NULL_FATAL(cf);
	CU_ASSERT(test_conf_warn[0] != '\0');
	conf_free(cf);
	cf = test_conf_with("idle_timeout 600\n");
	CU_ASSERT_PTR_NOT_NULL_FATAL(cf);
	CU_ASSERT_STRING_EQUAL(test_conf_warn, "");
	conf_free(cf);
	/* A warning does not survive a later error. */
	cf = test_conf_with("idle_timeout 2\nbogus 1\n");
	CU_ASSERT_PTR_NULL(cf);
	CU_ASSERT_STRING_EQUAL(test_conf_warn, "");
}

static void
test_conf_enums(void)
{
	struct config *cf;

	cf = test_conf_with("allow_plaintext yes\n");
	CU_ASSERT_PTR_NOT_NULL_FATAL(cf);
	CU_ASSERT_EQUAL(cf->allow_plaintext, CONF_PLAINTEXT_YES);
	conf_free(cf);
	cf = test_conf_with("allow_plaintext local\n");
	CU_ASSERT_PTR_NOT_NULL_FATAL(cf);
	CU_ASSERT_EQUAL(cf->allow_plaintext, CONF_PLAINTEXT_LOCAL);
	conf_free(cf);
	test_conf_expect_err("allow_plaintext maybe\n",
	    "t.conf:3: allow_plaintext: \"maybe\" is not yes, no or local");
	test_conf_expect_bad("allow_plaintext YES\n");
	test_conf_expect_bad("allow_plaintext yes no\n");

	CU_ASSERT_EQUAL(test_conf_uint("workers auto\n",
	    offsetof(struct config, workers)), 0);
	CU_ASSERT_EQUAL(test_conf_uint("workers 1\n",
	    offsetof(struct config, workers)), 1);
	CU_ASSERT_EQUAL(test_conf_uint("workers 256\n",
	    offsetof(struct config, workers)), 256);
	test_conf_expect_err("workers 0\n",
	    "t.conf:3: workers: 0 is out of range (1..256)");
	test_conf_expect_bad("workers 257\n");
	test_conf_expect_bad("workers AUTO\n");
	test_conf_expect_bad("workers -1\n");

	cf = test_conf_with("log_level info\n");
	CU_ASSERT_PTR_NOT_NULL_FATAL(cf);
	CU_ASSERT_EQUAL(cf->log_debug, 0);
	conf_free(cf);
	test_conf_expect_err("log_level trace\n",
	    "t.conf:3: log_level: \"trace\" is not info or debug");

	test_conf_expect_err("user a b\n",
	    "t.conf:3: user: one value expected, got \"a b\"");
	test_conf_expect_bad("group a b\n");
	cf = test_conf_with("user 1000\ngroup mail\n");
	CU_ASSERT_PTR_NOT_NULL_FATAL(cf);
	CU_ASSERT_STRING_EQUAL(cf->user, "1000");
	CU_ASSERT_STRING_EQUAL(cf->group, "mail");
	conf_free(cf);
	cf = test_conf_with("dovecot_uidl_format %v.%u\n");
	CU_ASSERT_PTR_NOT_NULL_FATAL(cf);
	CU_ASSERT_STRING_EQUAL(cf->dovecot_uidl_format, "%v.%u");
	conf_free(cf);
}

static void
test_conf_listen(void)
{
	static const char *const bad[] = {
		"1.2.3.4", "1.2.3.4:", "1.2.3.4:0", "1.2.3.4:65536",
		"1.2.3.4:+1", "1.2.3.4:0x6e", "1.2.3.4:pop3", "::1:110",
		"[::1]110", "[::1]", "[::1:110", "localhost:110", "127.1:110",
		"1.2.3.256:110", "[]:110", ":110", "[1.2.3.4]:110",
		"[::g]:110", "1.2.3.4:110 1.2.3.4:111", "*:110",
		"[0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:1]:1",
	};
	char text[256];
	struct config *cf;
	const struct sockaddr_in6 *sin6;
	const struct sockaddr_in *sin;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), "listen %s\n", bad[i]);
		test_conf_expect_bad(text);
		snprintf(text, sizeof(text), "tls_cert /c\ntls_key /k\n"
		    "listen_tls %s\n", bad[i]);
		cf = test_conf_with(text);
		CU_ASSERT_PTR_NULL(cf);
		CU_ASSERT(strncmp(test_conf_err, "t.conf:5: listen_tls: ",
		    22) == 0);
		conf_free(cf);
	}
	test_conf_expect_err("listen ::1:110\n", "t.conf:3: listen: "
	    "\"::1:110\": an IPv6 address needs brackets: [ADDR6]:PORT");
	test_conf_expect_err("listen 1.2.3.4:0\n", "t.conf:3: listen: "
	    "\"1.2.3.4:0\": the port must be a number from 1 to 65535");

	cf = test_conf_with("listen [2001:db8::7]:65535\nlisten 0.0.0.0:1\n");
	CU_ASSERT_PTR_NOT_NULL_FATAL(cf);
	CU_ASSERT_EQUAL_FATAL(cf->nlistens, 2);
	sin6 = (const struct sockaddr_in6 *)&cf->listens[0].ss;
	CU_ASSERT_EQUAL(sin6->sin6_family, AF_INET6);
	CU_ASSERT_EQUAL(ntohs(sin6->sin6_port), 65535);
	CU_ASSERT_EQUAL(sin6->sin6_addr.s6_addr[0], 0x20);
	CU_ASSERT_EQUAL(sin6->sin6_addr.s6_addr[15], 7);
	sin = (const struct sockaddr_in *)&cf->listens[1].ss;
	CU_ASSERT_EQUAL(ntohs(sin->sin_port), 1);
	conf_free(cf);

	/* The same address twice cannot be bound; IPv4 and IPv6 can. */
	test_conf_expect_err("listen 127.0.0.1:110\nlisten 127.0.0.1:110\n",
	    "t.conf:4: listen: 127.0.0.1:110 is already a listener");
	test_conf_expect_err("tls_cert /c\ntls_key /k\n"
	    "listen [::1]:995\nlisten_tls [::1]:995\n",
	    "t.conf:6: listen_tls: [::1]:995 is already a listener");
	cf = test_conf_with("listen 0.0.0.0:110\nlisten [::]:110\n");
	CU_ASSERT_PTR_NOT_NULL(cf);
	conf_free(cf);

	/* listen_tls alone: no default plain listener is added. */
	cf = test_conf_with("tls_cert /c\ntls_key /k\nlisten_tls "
	    "127.0.0.1:995\n");
	CU_ASSERT_PTR_NOT_NULL_FATAL(cf);
	CU_ASSERT_EQUAL_FATAL(cf->nlistens, 1);
	CU_ASSERT_EQUAL(cf->listens[0].tls, 1);
	CU_ASSERT_STRING_EQUAL(cf->listens[0].text, "127.0.0.1:995");
	conf_free(cf);
}

static void
test_conf_tls_pairs(void)
{
	struct config *cf;

	test_conf_expect_err("\ntls_cert /c\n",
	    "t.conf:4: tls_cert given without tls_key");
	test_conf_expect_err("tls_key /k\n",
	    "t.conf:3: tls_key given without tls_cert");
	test_conf_expect_err("listen 127.0.0.1:110\nlisten_tls 127.0.0.1:995\n"
	    "listen_tls 127.0.0.1:996\n",
	    "t.conf:4: listen_tls needs tls_cert and tls_key");
	/* A certificate without listen_tls is fine (STLS). */
	cf = test_conf_with("tls_key /k\ntls_cert /c\n");
	CU_ASSERT_PTR_NOT_NULL_FATAL(cf);
	CU_ASSERT_EQUAL(cf->nlistens, 1);
	CU_ASSERT_EQUAL(cf->listens[0].tls, 0);
	conf_free(cf);
}

static void
test_conf_mail_location(void)
{
	static const char *const good[] = {
		"/m/%u", "/m/%n", "/m/%d/%n", "/m/100%%/%u", "/%u",
	};
	char text[256];
	struct config *cf;
	size_t i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		snprintf(text, sizeof(text), "passwd_file /p\n"
		    "mail_location %s\n", good[i]);
		cf = test_conf_parse(text);
		CU_ASSERT_PTR_NOT_NULL(cf);
		if (cf != NULL)
			CU_ASSERT_STRING_EQUAL(cf->mail_location, good[i]);
		conf_free(cf);
	}
	cf = test_conf_parse("passwd_file /p\nmail_location /m/%x/%u\n");
	CU_ASSERT_PTR_NULL(cf);
	CU_ASSERT_STRING_EQUAL(test_conf_err, "t.conf:2: mail_location: "
	    "unknown escape \"%x\" (use %u, %n, %d or %%)");
	cf = test_conf_parse("passwd_file /p\nmail_location /var/mail\n");
	CU_ASSERT_PTR_NULL(cf);
	CU_ASSERT_STRING_EQUAL(test_conf_err, "t.conf:2: mail_location: "
	    "\"/var/mail\" contains none of %u, %n, %d");
	cf = test_conf_parse("passwd_file /p\nmail_location m/%u\n");
	CU_ASSERT_PTR_NULL(cf);
	CU_ASSERT_STRING_EQUAL(test_conf_err, "t.conf:2: mail_location: "
	    "\"m/%u\" is not an absolute path");
	cf = test_conf_parse("passwd_file /p\nmail_location /m/%%u\n");
	CU_ASSERT_PTR_NULL(cf);
	cf = test_conf_parse("passwd_file /p\nmail_location /m/%u%\n");
	CU_ASSERT_PTR_NULL(cf);
	CU_ASSERT(strstr(test_conf_err, "lone %") != NULL);
	cf = test_conf_parse("passwd_file /p\nmail_location /m/%U\n");
	CU_ASSERT_PTR_NULL(cf);
}

static void
test_conf_files(void)
{
	char dir[512], conf[600], pw[600], text[2048];
	struct config *cf;

	snprintf(dir, sizeof(dir), "%s", test_tmpdir());
	snprintf(conf, sizeof(conf), "%s/evpop3d.conf", dir);
	snprintf(pw, sizeof(pw), "%s/passwd", dir);

	cf = conf_load(conf, 1, test_conf_err, sizeof(test_conf_err),
	    test_conf_warn, sizeof(test_conf_warn));
	CU_ASSERT_PTR_NULL(cf);
	snprintf(text, sizeof(text), "%s: No such file or directory", conf);
	CU_ASSERT_STRING_EQUAL(test_conf_err, text);

	snprintf(text, sizeof(text), "# test\nmail_location /m/%%u\n"
	    "passwd_file %s\nidle_timeout 5\n", pw);
	CU_ASSERT_EQUAL_FATAL(test_write_file(conf, text, strlen(text)), 0);
	/* Without file checks the missing passwd_file does not matter. */
	cf = conf_load(conf, 0, test_conf_err, sizeof(test_conf_err),
	    test_conf_warn, sizeof(test_conf_warn));
	CU_ASSERT_PTR_NOT_NULL(cf);
	if (cf != NULL)
		CU_ASSERT_STRING_EQUAL(cf->path, conf);
	conf_free(cf);
	snprintf(text, sizeof(text), "%s:4: idle_timeout 5", conf);
	CU_ASSERT(strncmp(test_conf_warn, text, strlen(text)) == 0);

	cf = conf_load(conf, 1, test_conf_err, sizeof(test_conf_err),
	    test_conf_warn, sizeof(test_conf_warn));
	CU_ASSERT_PTR_NULL(cf);
	snprintf(text, sizeof(text),
	    "%s:3: passwd_file %s: No such file or directory", conf, pw);
	CU_ASSERT_STRING_EQUAL(test_conf_err, text);
	CU_ASSERT_STRING_EQUAL(test_conf_warn, "");

	CU_ASSERT_EQUAL_FATAL(test_write_file(pw, "u:{PLAIN}x\n", 11), 0);
	cf = conf_load(conf, 1, test_conf_err, sizeof(test_conf_err),
	    test_conf_warn, sizeof(test_conf_warn));
	CU_ASSERT_PTR_NOT_NULL(cf);
	conf_free(cf);

	/* TLS files are checked too, each at its own line. */
	snprintf(text, sizeof(text), "mail_location /m/%%u\n"
	    "passwd_file %s\ntls_cert %s\ntls_key %s/nokey.pem\n", pw, pw,
	    dir);
	CU_ASSERT_EQUAL_FATAL(test_write_file(conf, text, strlen(text)), 0);
	cf = conf_load(conf, 1, test_conf_err, sizeof(test_conf_err), NULL,
	    0);
	CU_ASSERT_PTR_NULL(cf);
	snprintf(text, sizeof(text),
	    "%s:4: tls_key %s/nokey.pem: No such file or directory", conf,
	    dir);
	CU_ASSERT_STRING_EQUAL(test_conf_err, text);

	/* Parse errors from a file carry its path. */
	CU_ASSERT_EQUAL_FATAL(test_write_file(conf, "\nlisen x\n", 9), 0);
	cf = conf_load(conf, 0, test_conf_err, sizeof(test_conf_err), NULL,
	    0);
	CU_ASSERT_PTR_NULL(cf);
	snprintf(text, sizeof(text), "%s:2: unknown key \"lisen\"", conf);
	CU_ASSERT_STRING_EQUAL(test_conf_err, text);
	test_rmtree(dir);
}

static void
test_conf_expand(void)
{
	char out[256];

	CU_ASSERT_EQUAL(conf_expand_location("/m/%u/Maildir", "bob@ex.org",
	    out, sizeof(out)), 0);
	CU_ASSERT_STRING_EQUAL(out, "/m/bob@ex.org/Maildir");
	CU_ASSERT_EQUAL(conf_expand_location("/m/%d/%n", "bob@ex.org", out,
	    sizeof(out)), 0);
	CU_ASSERT_STRING_EQUAL(out, "/m/ex.org/bob");
	CU_ASSERT_EQUAL(conf_expand_location("/m/%d/%n/%u", "alice", out,
	    sizeof(out)), 0);
	CU_ASSERT_STRING_EQUAL(out, "/m//alice/alice");
	CU_ASSERT_EQUAL(conf_expand_location("/m/100%%/%n%%", "a@b@c", out,
	    sizeof(out)), 0);
	CU_ASSERT_STRING_EQUAL(out, "/m/100%/a%");
	CU_ASSERT_EQUAL(conf_expand_location("/%d", "a@b@c", out,
	    sizeof(out)), 0);
	CU_ASSERT_STRING_EQUAL(out, "/b@c");
	/* Exactly fitting, and one octet short. */
	CU_ASSERT_EQUAL(conf_expand_location("/m/%u", "bob", out, 7), 0);
	CU_ASSERT_STRING_EQUAL(out, "/m/bob");
	CU_ASSERT_EQUAL(conf_expand_location("/m/%u", "bob", out, 6), -1);
	CU_ASSERT_EQUAL(conf_expand_location("/m/%u/x", "bob", out, 8), -1);
	/* Escapes the loader refuses are refused here as well. */
	CU_ASSERT_EQUAL(conf_expand_location("/m/%x", "bob", out,
	    sizeof(out)), -1);
	CU_ASSERT_EQUAL(conf_expand_location("/m/%", "bob", out,
	    sizeof(out)), -1);
}

/* Is text (an IPv4 or IPv6 address) trusted by cf? */
static int
test_conf_trusted(const struct config *cf, const char *text)
{
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;

	memset(&sin, 0, sizeof(sin));
	memset(&sin6, 0, sizeof(sin6));
	if (inet_pton(AF_INET, text, &sin.sin_addr) == 1) {
		sin.sin_family = AF_INET;
		return conf_proxy_trusted(cf, (struct sockaddr *)&sin);
	}
	CU_ASSERT_FATAL(inet_pton(AF_INET6, text, &sin6.sin6_addr) == 1);
	sin6.sin6_family = AF_INET6;
	return conf_proxy_trusted(cf, (struct sockaddr *)&sin6);
}

static void
test_conf_cidr(void)
{
	struct config *cf;
	struct sockaddr sa;

	cf = test_conf_with("proxy_protocol_from 10.0.0.0/8 192.168.1.7/32 "
	    "172.16.0.0/12\nproxy_protocol_from 2001:db8::/32 ::1/128 "
	    "fe80::/63 10.9.9.9\n");
	CU_ASSERT_PTR_NOT_NULL_FATAL(cf);
	CU_ASSERT_EQUAL(cf->nproxy_from, 7);
	CU_ASSERT_EQUAL(test_conf_trusted(cf, "10.0.0.0"), 1);
	CU_ASSERT_EQUAL(test_conf_trusted(cf, "10.255.255.255"), 1);
	CU_ASSERT_EQUAL(test_conf_trusted(cf, "11.0.0.1"), 0);
	CU_ASSERT_EQUAL(test_conf_trusted(cf, "9.255.255.255"), 0);
	CU_ASSERT_EQUAL(test_conf_trusted(cf, "192.168.1.7"), 1);
	CU_ASSERT_EQUAL(test_conf_trusted(cf, "192.168.1.6"), 0);
	CU_ASSERT_EQUAL(test_conf_trusted(cf, "192.168.1.8"), 0);
	CU_ASSERT_EQUAL(test_conf_trusted(cf, "172.31.255.255"), 1);
	CU_ASSERT_EQUAL(test_conf_trusted(cf, "172.32.0.0"), 0);
	CU_ASSERT_EQUAL(test_conf_trusted(cf, "172.15.255.255"), 0);
	/* IPv4-mapped peers (dual-stack sockets) match IPv4 CIDRs. */
	CU_ASSERT_EQUAL(test_conf_trusted(cf, "::ffff:10.1.2.3"), 1);
	CU_ASSERT_EQUAL(test_conf_trusted(cf, "::ffff:192.168.1.7"), 1);
	CU_ASSERT_EQUAL(test_conf_trusted(cf, "::ffff:11.1.2.3"), 0);
	/* ...but an IPv4-compatible or other IPv6 address does not. */
	CU_ASSERT_EQUAL(test_conf_trusted(cf, "::10.1.2.3"), 0);
	CU_ASSERT_EQUAL(test_conf_trusted(cf, "2001:db8:ffff::1"), 1);
	CU_ASSERT_EQUAL(test_conf_trusted(cf, "2001:db9::1"), 0);
	CU_ASSERT_EQUAL(test_conf_trusted(cf, "::1"), 1);
	CU_ASSERT_EQUAL(test_conf_trusted(cf, "::2"), 0);
	CU_ASSERT_EQUAL(test_conf_trusted(cf, "fe80::1:0:0:1"), 1);
	CU_ASSERT_EQUAL(test_conf_trusted(cf, "fe80:0:0:1::1"), 1);
	CU_ASSERT_EQUAL(test_conf_trusted(cf, "fe80:0:0:2::1"), 0);
	CU_ASSERT_EQUAL(test_conf_trusted(cf, "10.9.9.9"), 1);
	CU_ASSERT_EQUAL(test_conf_trusted(cf, "127.0.0.1"), 0);
	memset(&sa, 0, sizeof(sa));
	sa.sa_family = AF_UNIX;
	CU_ASSERT_EQUAL(conf_proxy_trusted(cf, &sa), 0);
	CU_ASSERT_EQUAL(conf_proxy_trusted(cf, NULL), 0);
	conf_free(cf);

	/* /0 for IPv4 takes every IPv4 peer (mapped too) but no IPv6 one. */
	cf = test_conf_with("proxy_protocol_from 0.0.0.0/0\n");
	CU_ASSERT_PTR_NOT_NULL_FATAL(cf);
	CU_ASSERT_EQUAL(test_conf_trusted(cf, "1.2.3.4"), 1);
	CU_ASSERT_EQUAL(test_conf_trusted(cf, "255.255.255.255"), 1);
	CU_ASSERT_EQUAL(test_conf_trusted(cf, "::ffff:1.2.3.4"), 1);
	CU_ASSERT_EQUAL(test_conf_trusted(cf, "2001:db8::1"), 0);
	conf_free(cf);
	cf = test_conf_with("proxy_protocol_from ::/0\n");
	CU_ASSERT_PTR_NOT_NULL_FATAL(cf);
	CU_ASSERT_EQUAL(test_conf_trusted(cf, "2001:db8::1"), 1);
	CU_ASSERT_EQUAL(test_conf_trusted(cf, "::"), 1);
	conf_free(cf);
	/* An IPv6 CIDR written in mapped form matches plain IPv4 peers. */
	cf = test_conf_with("proxy_protocol_from ::ffff:10.0.0.0/104\n");
	CU_ASSERT_PTR_NOT_NULL_FATAL(cf);
	CU_ASSERT_EQUAL(test_conf_trusted(cf, "10.200.0.1"), 1);
	CU_ASSERT_EQUAL(test_conf_trusted(cf, "11.0.0.1"), 0);
	conf_free(cf);
	/* Host bits past the prefix are ignored. */
	cf = test_conf_with("proxy_protocol_from 10.1.2.3/8\n");
	CU_ASSERT_PTR_NOT_NULL_FATAL(cf);
	CU_ASSERT_EQUAL(test_conf_trusted(cf, "10.200.0.1"), 1);
	conf_free(cf);
	/* No proxy_protocol_from: nobody is trusted. */
	cf = test_conf_with("");
	CU_ASSERT_PTR_NOT_NULL_FATAL(cf);
	CU_ASSERT_EQUAL(test_conf_trusted(cf, "127.0.0.1"), 0);
	CU_ASSERT_EQUAL(test_conf_trusted(cf, "::1"), 0);
	conf_free(cf);

	test_conf_expect_err("proxy_protocol_from 10.0.0.0/8 10.0.0.0/33\n",
	    "t.conf:3: proxy_protocol_from: \"10.0.0.0/33\" is not an "
	    "address or CIDR");
	test_conf_expect_bad("proxy_protocol_from ::/129\n");
	test_conf_expect_bad("proxy_protocol_from 10.0.0.0/\n");
	test_conf_expect_bad("proxy_protocol_from 10.0.0.0/+8\n");
	test_conf_expect_bad("proxy_protocol_from 10.0.0.0/8/8\n");
	test_conf_expect_bad("proxy_protocol_from 10.0.0/8\n");
	test_conf_expect_bad("proxy_protocol_from haproxy.local\n");
	test_conf_expect_bad("proxy_protocol_from 10.0.0.0,10.0.0.1\n");
}

/* evpop3d's service keys: defaults, values, and login_trusted_networks. */
static void
test_conf_service_keys(void)
{
	struct config *cf;
	struct sockaddr_in lo, pub;

	memset(&lo, 0, sizeof(lo));
	lo.sin_family = AF_INET;
	pub = lo;
	lo.sin_addr.s_addr = htonl(0x7f000001);
	pub.sin_addr.s_addr = htonl(0xc0000201);

	cf = test_conf_with("");
	CU_ASSERT_PTR_NOT_NULL_FATAL(cf);
	CU_ASSERT_EQUAL(cf->login_timeout, 60);
	CU_ASSERT_EQUAL(cf->auth_fail_max, 3);
	CU_ASSERT_PTR_NULL(cf->pid_file);
	CU_ASSERT(conf_login_trusted(cf, (struct sockaddr *)&lo));
	CU_ASSERT(!conf_login_trusted(cf, (struct sockaddr *)&pub));
	conf_free(cf);

	cf = test_conf_with("pid_file /run/e.pid\nlogin_timeout 5\n"
	    "auth_fail_max 7\nlogin_trusted_networks 192.0.2.0/24\n");
	CU_ASSERT_PTR_NOT_NULL_FATAL(cf);
	CU_ASSERT_STRING_EQUAL(cf->pid_file, "/run/e.pid");
	CU_ASSERT_EQUAL(cf->login_timeout, 5);
	CU_ASSERT_EQUAL(cf->auth_fail_max, 7);
	CU_ASSERT(!conf_login_trusted(cf, (struct sockaddr *)&lo));
	CU_ASSERT(conf_login_trusted(cf, (struct sockaddr *)&pub));
	conf_free(cf);

	cf = test_conf_with("login_trusted_networks none\n");
	CU_ASSERT_PTR_NOT_NULL_FATAL(cf);
	CU_ASSERT(!conf_login_trusted(cf, (struct sockaddr *)&lo));
	conf_free(cf);

	cf = test_conf_with("log_format json\n");
	CU_ASSERT_PTR_NOT_NULL_FATAL(cf);
	CU_ASSERT_EQUAL(cf->log_json, 1);
	conf_free(cf);
	cf = test_conf_with("delete_mode trash\ntrash_days 30\n");
	CU_ASSERT_PTR_NOT_NULL_FATAL(cf);
	CU_ASSERT(cf->delete_trash && cf->trash_days == 30);
	conf_free(cf);
	cf = test_conf_with("");
	CU_ASSERT_EQUAL(cf->expire_days, -1);
	conf_free(cf);
	cf = test_conf_with("expire_days 0\n");
	CU_ASSERT_PTR_NOT_NULL_FATAL(cf);
	CU_ASSERT_EQUAL(cf->expire_days, 0);
	conf_free(cf);
	test_conf_expect_err("expire_days soon\n",
	    "t.conf:3: expire_days: \"soon\" is not never or 0..3650");
	test_conf_expect_err("delete_mode shred\n",
	    "t.conf:3: delete_mode: \"shred\" is not unlink or trash");
	test_conf_expect_err("log_format xml\n",
	    "t.conf:3: log_format: \"xml\" is not text or json");
	test_conf_expect_err("login_timeout 0\n",
	    "t.conf:3: login_timeout: 0 is out of range (1..86400)");
	test_conf_expect_err("login_trusted_networks 10.0.0.0/33\n",
	    "t.conf:3: login_trusted_networks: \"10.0.0.0/33\" is not an "
	    "address or CIDR");
}

void
test_conf_register(void)
{
	CU_pSuite s;

	s = CU_add_suite("conf", NULL, NULL);
	CU_add_test(s, "defaults", test_conf_defaults);
	CU_add_test(s, "all keys", test_conf_all_keys);
	CU_add_test(s, "comments and blanks", test_conf_comments_blanks);
	CU_add_test(s, "errors name file:line", test_conf_errors_name_line);
	CU_add_test(s, "empty values", test_conf_empty_values);
	CU_add_test(s, "duplicates", test_conf_duplicates);
	CU_add_test(s, "numbers", test_conf_numbers);
	CU_add_test(s, "idle_timeout warning", test_conf_idle_warning);
	CU_add_test(s, "enums and words", test_conf_enums);
	CU_add_test(s, "listen", test_conf_listen);
	CU_add_test(s, "tls pairs", test_conf_tls_pairs);
	CU_add_test(s, "mail_location", test_conf_mail_location);
	CU_add_test(s, "file checks", test_conf_files);
	CU_add_test(s, "expand_location", test_conf_expand);
	CU_add_test(s, "proxy CIDRs", test_conf_cidr);
	CU_add_test(s, "service keys", test_conf_service_keys);
}
