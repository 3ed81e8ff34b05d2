// Tiny N-API addon: the few syscalls Node does not expose and the plugins need.
// setns/unshare act on the calling (main) thread only; callers must switch back
// in the same tick (see lib/netns). flock blocks the main thread on purpose:
// a plugin does nothing else while it waits for the IPAM lock.
// nftRun runs an nft command text through libnftables in this process (what
// the nft CLI does after it has started): no fork/exec of nft and no
// child_process in Node for every change (docs/benchmarks/startup.md). The
// library is opened on first use; without it nftRun returns null and the
// caller runs the nft binary.
// nfnlTransact sends one nfnetlink batch and reads the kernel's answers
// (lib/firewall/nft-elements.ts: the element changes of an ADD or DEL, which
// need neither libnftables' parser nor its cache).
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <linux/netlink.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <node_api.h>

static napi_value throw_errno(napi_env env, int err, const char *syscall) {
  char msg[160];
  snprintf(msg, sizeof msg, "%s failed: %s", syscall, strerror(err));
  napi_value code, message, error, errnum;
  const char *name = NULL;
  switch (err) {
    case EPERM: name = "EPERM"; break; case ENOENT: name = "ENOENT"; break;
    case EINVAL: name = "EINVAL"; break; case EBADF: name = "EBADF"; break;
    case EWOULDBLOCK: name = "EWOULDBLOCK"; break; case EINTR: name = "EINTR"; break;
    case EBUSY: name = "EBUSY"; break; case EEXIST: name = "EEXIST"; break;
    case ENOMEM: name = "ENOMEM"; break; case ETIMEDOUT: name = "ETIMEDOUT"; break;
    case ENOBUFS: name = "ENOBUFS"; break;
    default: name = "EUNKNOWN";
  }
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message);
  napi_create_error(env, code, message, &error);
  napi_create_int32(env, err, &errnum);
  napi_set_named_property(env, error, "errno", errnum);
  napi_value sc;
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &sc);
  napi_set_named_property(env, error, "syscall", sc);
  napi_throw(env, error);
  return NULL;
}

static int int_arg(napi_env env, napi_callback_info info, size_t want, int32_t *out) {
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < want) { napi_throw_type_error(env, NULL, "missing argument"); return -1; }
  for (size_t i = 0; i < want; i++) {
    if (napi_get_value_int32(env, argv[i], &out[i]) != napi_ok) {
      napi_throw_type_error(env, NULL, "expected an integer argument");
      return -1;
    }
  }
  return 0;
}

static napi_value undefined(napi_env env) { napi_value u; napi_get_undefined(env, &u); return u; }

// setns(fd, nstype)
static napi_value js_setns(napi_env env, napi_callback_info info) {
  int32_t a[2];
  if (int_arg(env, info, 2, a)) return NULL;
  if (setns(a[0], a[1]) != 0) return throw_errno(env, errno, "setns");
  return undefined(env);
}

// unshare(flags)
static napi_value js_unshare(napi_env env, napi_callback_info info) {
  int32_t a[1];
  if (int_arg(env, info, 1, a)) return NULL;
  if (unshare(a[0]) != 0) return throw_errno(env, errno, "unshare");
  return undefined(env);
}

// flock(fd, op): retried on EINTR; throws EWOULDBLOCK for LOCK_NB when held.
static napi_value js_flock(napi_env env, napi_callback_info info) {
  int32_t a[2];
  if (int_arg(env, info, 2, a)) return NULL;
  int rc;
  do { rc = flock(a[0], a[1]); } while (rc != 0 && errno == EINTR);
  if (rc != 0) return throw_errno(env, errno, "flock");
  return undefined(env);
}

static napi_value js_gettid(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value v;
  napi_create_int32(env, (int32_t)syscall(SYS_gettid), &v);
  return v;
}

static int str_arg(napi_env env, napi_value v, char *buf, size_t len) {
  size_t got;
  if (napi_get_value_string_utf8(env, v, buf, len, &got) != napi_ok || got >= len - 1) {
    napi_throw_type_error(env, NULL, "expected a path string");
    return -1;
  }
  return 0;
}

// bindMount(source, target): what `ip netns add` does to pin a namespace.
static napi_value js_bind_mount(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  char src[4096], dst[4096];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 2 || str_arg(env, argv[0], src, sizeof src) || str_arg(env, argv[1], dst, sizeof dst)) return NULL;
  if (mount(src, dst, "none", MS_BIND, NULL) != 0) return throw_errno(env, errno, "mount");
  return undefined(env);
}

// umount(target) with MNT_DETACH, as `ip netns del` does.
static napi_value js_umount(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  char dst[4096];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || str_arg(env, argv[0], dst, sizeof dst)) return NULL;
  if (umount2(dst, MNT_DETACH) != 0) return throw_errno(env, errno, "umount2");
  return undefined(env);
}

// libnftables 1.x, declared here so that building needs no -dev package.
struct nft_ctx;
#define NFT_CTX_DEFAULT 0
#define NFT_CTX_OUTPUT_JSON (1 << 4)
static struct {
  int tried;
  struct nft_ctx *(*ctx_new)(uint32_t);
  void (*ctx_free)(struct nft_ctx *);
  void (*output_set_flags)(struct nft_ctx *, unsigned int);
  int (*buffer_output)(struct nft_ctx *);
  int (*buffer_error)(struct nft_ctx *);
  const char *(*get_output_buffer)(struct nft_ctx *);
  const char *(*get_error_buffer)(struct nft_ctx *);
  int (*run_cmd_from_buffer)(struct nft_ctx *, const char *);
} nft;

static int nft_open(void) {
  if (nft.tried) return nft.run_cmd_from_buffer != NULL;
  nft.tried = 1;
  void *h = dlopen("libnftables.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!h) return 0;
#define SYM(field, name) *(void **)&nft.field = dlsym(h, name)
  SYM(ctx_new, "nft_ctx_new"); SYM(ctx_free, "nft_ctx_free"); SYM(output_set_flags, "nft_ctx_output_set_flags");
  SYM(buffer_output, "nft_ctx_buffer_output"); SYM(buffer_error, "nft_ctx_buffer_error");
  SYM(get_output_buffer, "nft_ctx_get_output_buffer"); SYM(get_error_buffer, "nft_ctx_get_error_buffer");
  SYM(run_cmd_from_buffer, "nft_run_cmd_from_buffer");
#undef SYM
  if (!nft.ctx_new || !nft.ctx_free || !nft.output_set_flags || !nft.buffer_output || !nft.buffer_error
      || !nft.get_output_buffer || !nft.get_error_buffer || !nft.run_cmd_from_buffer) {
    nft.run_cmd_from_buffer = NULL;
    dlclose(h);
    return 0;
  }
  return 1;
}

// nftRun(commands, json) -> { status, stdout, stderr } | null (no libnftables).
// A fresh context per call: its netlink socket is opened in the calling
// thread's network namespace (lib/netns switches it around the call).
static napi_value js_nft_run(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  bool json = false;
  size_t len;
  if (argc < 1 || napi_get_value_string_utf8(env, argv[0], NULL, 0, &len) != napi_ok) {
    napi_throw_type_error(env, NULL, "expected the nft commands as a string");
    return NULL;
  }
  if (argc > 1) napi_get_value_bool(env, argv[1], &json);
  napi_value result;
  if (!nft_open()) { napi_get_null(env, &result); return result; }
  char *text = malloc(len + 1);
  if (!text) return throw_errno(env, ENOMEM, "malloc");
  napi_get_value_string_utf8(env, argv[0], text, len + 1, &len);
  struct nft_ctx *ctx = nft.ctx_new(NFT_CTX_DEFAULT);
  if (!ctx) { free(text); return throw_errno(env, errno ? errno : ENOMEM, "nft_ctx_new"); }
  if (json) nft.output_set_flags(ctx, NFT_CTX_OUTPUT_JSON);
  nft.buffer_output(ctx);
  nft.buffer_error(ctx);
  int rc = nft.run_cmd_from_buffer(ctx, text);
  free(text);
  const char *out = nft.get_output_buffer(ctx), *err = nft.get_error_buffer(ctx);
  napi_value status, stdout_v, stderr_v;
  napi_create_object(env, &result);
  napi_create_int32(env, rc == 0 ? 0 : 1, &status);
  napi_create_string_utf8(env, out ? out : "", NAPI_AUTO_LENGTH, &stdout_v);
  napi_create_string_utf8(env, err ? err : "", NAPI_AUTO_LENGTH, &stderr_v);
  napi_set_named_property(env, result, "status", status);
  napi_set_named_property(env, result, "stdout", stdout_v);
  napi_set_named_property(env, result, "stderr", stderr_v);
  nft.ctx_free(ctx);
  return result;
}

// nfnlTransact(request: Buffer, acks: number) -> Buffer: one datagram to a
// fresh NETLINK_NETFILTER socket in the calling thread's network namespace,
// then every reply until `acks` acks/errors (NLMSG_ERROR) have come, or an
// error for the request's first message (a batch refused whole, e.g. EPERM),
// as one buffer. 10 s without an answer: ETIMEDOUT.
static napi_value js_nfnl_transact(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  void *req;
  size_t req_len;
  int32_t acks;
  bool is_buf = false;
  if (argc < 2 || napi_is_buffer(env, argv[0], &is_buf) != napi_ok || !is_buf
      || napi_get_buffer_info(env, argv[0], &req, &req_len) != napi_ok || napi_get_value_int32(env, argv[1], &acks) != napi_ok || acks < 1) {
    napi_throw_type_error(env, NULL, "expected (request buffer, number of acks)");
    return NULL;
  }
  if (req_len < sizeof(struct nlmsghdr)) {
    napi_throw_type_error(env, NULL, "the request holds no netlink message");
    return NULL;
  }
  uint32_t first_seq = ((struct nlmsghdr *)req)->nlmsg_seq;
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
  if (fd < 0) return throw_errno(env, errno, "socket");
  struct timeval tv = { .tv_sec = 10, .tv_usec = 0 };
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
  ssize_t n;
  do { n = sendto(fd, req, req_len, 0, (struct sockaddr *)&kernel, sizeof kernel); } while (n < 0 && errno == EINTR);
  if (n < 0) { int e = errno; close(fd); return throw_errno(env, e, "sendto"); }
  size_t cap = 16384, used = 0;
  char *out = malloc(cap);
  if (!out) { close(fd); return throw_errno(env, ENOMEM, "malloc"); }
  int seen = 0;
  while (seen < acks) {
    if (cap - used < 8192) {
      char *bigger = realloc(out, cap * 2);
      if (!bigger) { free(out); close(fd); return throw_errno(env, ENOMEM, "realloc"); }
      out = bigger;
      cap *= 2;
    }
    do { n = recv(fd, out + used, cap - used, 0); } while (n < 0 && errno == EINTR);
    if (n < 0) { int e = (errno == EAGAIN || errno == EWOULDBLOCK) ? ETIMEDOUT : errno; free(out); close(fd); return throw_errno(env, e, "recv"); }
    int left = (int)n; // (NLMSG_NEXT counts it down)
    for (struct nlmsghdr *h = (struct nlmsghdr *)(out + used); NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
      if (h->nlmsg_type != NLMSG_ERROR) continue;
      seen++;
      if (h->nlmsg_seq == first_seq) seen = acks;
    }
    used += (size_t)n;
  }
  close(fd);
  napi_value result;
  void *copy;
  napi_status st = napi_create_buffer_copy(env, used, out, &copy, &result);
  free(out);
  if (st != napi_ok) return throw_errno(env, ENOMEM, "napi_create_buffer_copy");
  return result;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    {"setns", NULL, js_setns, NULL, NULL, NULL, napi_default, NULL},
    {"unshare", NULL, js_unshare, NULL, NULL, NULL, napi_default, NULL},
    {"flock", NULL, js_flock, NULL, NULL, NULL, napi_default, NULL},
    {"gettid", NULL, js_gettid, NULL, NULL, NULL, napi_default, NULL},
    {"bindMount", NULL, js_bind_mount, NULL, NULL, NULL, napi_default, NULL},
    {"umount", NULL, js_umount, NULL, NULL, NULL, napi_default, NULL},
    {"nftRun", NULL, js_nft_run, NULL, NULL, NULL, napi_default, NULL},
    {"nfnlTransact", NULL, js_nfnl_transact, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
