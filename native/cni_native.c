// Tiny N-API addon: the few syscalls Node does not expose and the plugins need.
// setns/unshare act on the calling (main) thread only; callers must switch back
// in the same tick (see lib/netns). flock blocks the main thread on purpose:
// a plugin does nothing else while it waits for the IPAM lock.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
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

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    {"setns", NULL, js_setns, NULL, NULL, NULL, napi_default, NULL},
    {"unshare", NULL, js_unshare, NULL, NULL, NULL, napi_default, NULL},
    {"flock", NULL, js_flock, NULL, NULL, NULL, napi_default, NULL},
    {"gettid", NULL, js_gettid, NULL, NULL, NULL, napi_default, NULL},
    {"bindMount", NULL, js_bind_mount, NULL, NULL, NULL, napi_default, NULL},
    {"umount", NULL, js_umount, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
