/*
 * Batched UDP for Node: recvmmsg(2) / sendmmsg(2) on a non-blocking IPv4 socket, watched by a libuv poll handle
 * in Node's own event loop. It exists for one measured reason: node:dgram costs one system call and one JS
 * callback per datagram (and a Buffer, an rinfo object and a formatted address string), which made every Node
 * responder slower than OpenIPMI's ipmi_sim with 32 requests in flight (docs/PERFORMANCE.md, "Where the time
 * goes"). Here one call moves up to BATCH_MAX datagrams each way, into and out of buffers the caller owns and
 * reuses; everything else (parsing, answers, policy) stays in TypeScript (lib/batch-udp.ts wraps this file).
 *
 * Layout shared with lib/batch-udp.ts: a batch is `slot` bytes per datagram in one Uint8Array, and an Int32Array
 * `meta` of four int32 per datagram: length (received: -1 if truncated; to send: the length, replaced by -errno
 * if that datagram failed), the peer's IPv4 address as a host-order integer, its port, and the local address
 * (received: the datagram's destination, IP_PKTINFO's ipi_addr, on a socket opened with pktinfo, else 0; to send:
 * the source address to send from, IP_PKTINFO's ipi_spec_dst, or 0 for the kernel's choice). The local address
 * is what lets one socket bound to the wildcard serve many NIC addresses (nic-emulator/shared-ports.ts).
 *
 * Exports (each returns a number; a negative one is -errno):
 *   open(address, port, pktinfo)        -> fd       non-blocking, close-on-exec, bound, never SO_REUSEADDR;
 *                                                   pktinfo 1: IP_PKTINFO on (destination addresses received)
 *   localPort(fd)                       -> port
 *   recv(fd, buf, slot, max, meta)      -> count    0 when nothing is queued (EAGAIN is not an error here)
 *   send(fd, buf, slot, count, meta)    -> failures the datagrams not sent have -errno in their length field
 *   watch(fd, callback)                 -> handle   callback() runs in the event loop whenever fd is readable
 *   unwatch(handle)                                 stops and frees the watch (call before close)
 *   close(fd)
 */
#define _GNU_SOURCE
#include <node_api.h>
#include <uv.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BATCH_MAX 64
#define META_FIELDS 4
/* Room for one IP_PKTINFO control message per datagram. */
#define CMSG_ROOM CMSG_SPACE(sizeof(struct in_pktinfo))

static napi_value number(napi_env env, double x) {
  napi_value v;
  napi_create_double(env, x, &v);
  return v;
}

static napi_value fail(napi_env env, const char *msg) {
  napi_throw_type_error(env, NULL, msg);
  return NULL;
}

static int int_arg(napi_env env, napi_value v, int32_t *out) {
  return napi_get_value_int32(env, v, out) == napi_ok;
}

/* The data and element count of a typed array of the expected type. */
static int typed_arg(napi_env env, napi_value v, napi_typedarray_type want, void **data, size_t *count) {
  napi_typedarray_type type;
  napi_value ab;
  size_t offset;
  if (napi_get_typedarray_info(env, v, &type, count, data, &ab, &offset) != napi_ok) return 0;
  return type == want;
}

static size_t get_args(napi_env env, napi_callback_info info, size_t n, napi_value *argv) {
  size_t argc = n;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  return argc;
}

static napi_value Open(napi_env env, napi_callback_info info) {
  napi_value a[3];
  char address[INET_ADDRSTRLEN + 1];
  size_t len;
  int32_t port, pktinfo;
  if (get_args(env, info, 3, a) < 3 || napi_get_value_string_utf8(env, a[0], address, sizeof address, &len) != napi_ok ||
      !int_arg(env, a[1], &port) || port < 0 || port > 65535 || !int_arg(env, a[2], &pktinfo))
    return fail(env, "open(address: string, port: 0..65535, pktinfo: 0|1)");
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  if (inet_pton(AF_INET, address, &sa.sin_addr) != 1) return number(env, -EINVAL);
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return number(env, -errno);
  int on = 1;
  if ((pktinfo && setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &on, sizeof on) < 0) || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    int e = errno;
    close(fd);
    return number(env, -e);
  }
  return number(env, fd);
}

static napi_value LocalPort(napi_env env, napi_callback_info info) {
  napi_value a[1];
  int32_t fd;
  if (get_args(env, info, 1, a) < 1 || !int_arg(env, a[0], &fd)) return fail(env, "localPort(fd)");
  struct sockaddr_in sa;
  socklen_t sl = sizeof sa;
  if (getsockname(fd, (struct sockaddr *)&sa, &sl) < 0) return number(env, -errno);
  return number(env, ntohs(sa.sin_port));
}

/* The arguments shared by recv and send, checked so that no index can leave the caller's arrays. */
static int batch_args(napi_env env, napi_callback_info info, int32_t *fd, uint8_t **buf, int32_t *slot, int32_t *count, int32_t **meta) {
  napi_value a[5];
  size_t buf_len, meta_len;
  if (get_args(env, info, 5, a) < 5 || !int_arg(env, a[0], fd) || !typed_arg(env, a[1], napi_uint8_array, (void **)buf, &buf_len) ||
      !int_arg(env, a[2], slot) || !int_arg(env, a[3], count) || !typed_arg(env, a[4], napi_int32_array, (void **)meta, &meta_len))
    return 0;
  if (*slot <= 0 || *count < 0 || *count > BATCH_MAX) return 0;
  if ((size_t)*count * (size_t)*slot > buf_len || (size_t)*count * META_FIELDS > meta_len) return 0;
  return 1;
}

static napi_value Recv(napi_env env, napi_callback_info info) {
  int32_t fd, slot, max, *meta;
  uint8_t *buf;
  if (!batch_args(env, info, &fd, &buf, &slot, &max, &meta)) return fail(env, "recv(fd, Uint8Array, slot, max <= 64, Int32Array)");
  if (max == 0) return number(env, 0);
  struct mmsghdr m[BATCH_MAX];
  struct iovec iov[BATCH_MAX];
  struct sockaddr_in from[BATCH_MAX];
  union { char room[CMSG_ROOM]; struct cmsghdr align; } control[BATCH_MAX];
  memset(m, 0, sizeof(struct mmsghdr) * (size_t)max);
  for (int i = 0; i < max; i++) {
    iov[i].iov_base = buf + (size_t)i * (size_t)slot;
    iov[i].iov_len = (size_t)slot;
    m[i].msg_hdr.msg_iov = &iov[i];
    m[i].msg_hdr.msg_iovlen = 1;
    m[i].msg_hdr.msg_name = &from[i];
    m[i].msg_hdr.msg_namelen = sizeof from[i];
    m[i].msg_hdr.msg_control = control[i].room;
    m[i].msg_hdr.msg_controllen = CMSG_ROOM;
  }
  int n = recvmmsg(fd, m, (unsigned)max, MSG_DONTWAIT, NULL);
  if (n < 0) return number(env, errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno);
  for (int i = 0; i < n; i++) {
    meta[i * META_FIELDS] = (m[i].msg_hdr.msg_flags & MSG_TRUNC) ? -1 : (int32_t)m[i].msg_len;
    meta[i * META_FIELDS + 1] = (int32_t)ntohl(from[i].sin_addr.s_addr);
    meta[i * META_FIELDS + 2] = ntohs(from[i].sin_port);
    int32_t local = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m[i].msg_hdr); c; c = CMSG_NXTHDR(&m[i].msg_hdr, c)) {
      if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
        struct in_pktinfo pi;
        memcpy(&pi, CMSG_DATA(c), sizeof pi);
        local = (int32_t)ntohl(pi.ipi_addr.s_addr);
      }
    }
    meta[i * META_FIELDS + 3] = local;
  }
  return number(env, n);
}

static napi_value Send(napi_env env, napi_callback_info info) {
  int32_t fd, slot, count, *meta;
  uint8_t *buf;
  if (!batch_args(env, info, &fd, &buf, &slot, &count, &meta)) return fail(env, "send(fd, Uint8Array, slot, count <= 64, Int32Array)");
  struct mmsghdr m[BATCH_MAX];
  struct iovec iov[BATCH_MAX];
  struct sockaddr_in to[BATCH_MAX];
  union { char room[CMSG_ROOM]; struct cmsghdr align; } control[BATCH_MAX];
  memset(m, 0, sizeof(struct mmsghdr) * (size_t)count);
  memset(to, 0, sizeof(struct sockaddr_in) * (size_t)count);
  for (int i = 0; i < count; i++) {
    int32_t len = meta[i * META_FIELDS];
    iov[i].iov_base = buf + (size_t)i * (size_t)slot;
    iov[i].iov_len = len < 0 ? 0 : (len > slot ? (size_t)slot : (size_t)len);
    to[i].sin_family = AF_INET;
    to[i].sin_addr.s_addr = htonl((uint32_t)meta[i * META_FIELDS + 1]);
    to[i].sin_port = htons((uint16_t)meta[i * META_FIELDS + 2]);
    m[i].msg_hdr.msg_iov = &iov[i];
    m[i].msg_hdr.msg_iovlen = 1;
    m[i].msg_hdr.msg_name = &to[i];
    m[i].msg_hdr.msg_namelen = sizeof to[i];
    uint32_t from = (uint32_t)meta[i * META_FIELDS + 3];
    if (from != 0) {
      /* Send from this local address (a NIC's own, on a socket bound to the wildcard); any interface. */
      memset(control[i].room, 0, CMSG_ROOM);
      m[i].msg_hdr.msg_control = control[i].room;
      m[i].msg_hdr.msg_controllen = CMSG_ROOM;
      struct cmsghdr *c = CMSG_FIRSTHDR(&m[i].msg_hdr);
      c->cmsg_level = IPPROTO_IP;
      c->cmsg_type = IP_PKTINFO;
      c->cmsg_len = CMSG_LEN(sizeof(struct in_pktinfo));
      struct in_pktinfo pi;
      memset(&pi, 0, sizeof pi);
      pi.ipi_spec_dst.s_addr = htonl(from);
      memcpy(CMSG_DATA(c), &pi, sizeof pi);
    }
  }
  /* sendmmsg stops at the first datagram that fails: note its errno, skip it, send the rest. */
  int done = 0, failures = 0;
  while (done < count) {
    int n = sendmmsg(fd, m + done, (unsigned)(count - done), MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      meta[done * META_FIELDS] = -errno;
      failures++;
      done++;
    } else {
      done += n;
    }
  }
  return number(env, failures);
}

typedef struct {
  uv_poll_t poll; /* first member: the uv_poll_t* libuv hands back is this struct */
  napi_env env;
  napi_ref callback;
  napi_async_context context;
  int stopped;
} watch_t;

static void on_readable(uv_poll_t *handle, int status, int events) {
  (void)status;
  (void)events;
  watch_t *w = (watch_t *)handle;
  napi_handle_scope scope;
  napi_value callback, receiver, result;
  if (napi_open_handle_scope(w->env, &scope) != napi_ok) return;
  napi_get_reference_value(w->env, w->callback, &callback);
  napi_get_global(w->env, &receiver);
  /* make_callback, not call_function: queued microtasks and nextTicks run after the callback, as after any other
     I/O callback. */
  if (napi_make_callback(w->env, w->context, receiver, callback, 0, NULL, &result) != napi_ok) {
    /* The callback threw. Nothing JS called us, so nobody would see the exception: hand it to Node as an
       uncaught one, as an exception in any other I/O callback is ('uncaughtException', else exit). */
    bool pending = false;
    napi_value error;
    if (napi_is_exception_pending(w->env, &pending) == napi_ok && pending && napi_get_and_clear_last_exception(w->env, &error) == napi_ok)
      napi_fatal_exception(w->env, error);
  }
  napi_close_handle_scope(w->env, scope);
}

static void on_closed(uv_handle_t *handle) { free(handle); }

static void watch_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)data;
  (void)hint; /* the watch is freed by unwatch (after uv_close), never by the garbage collector */
}

static napi_value Watch(napi_env env, napi_callback_info info) {
  napi_value a[2], resource, name, handle;
  int32_t fd;
  napi_valuetype t;
  if (get_args(env, info, 2, a) < 2 || !int_arg(env, a[0], &fd) || napi_typeof(env, a[1], &t) != napi_ok || t != napi_function)
    return fail(env, "watch(fd, callback)");
  uv_loop_t *loop;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) return fail(env, "no event loop");
  watch_t *w = calloc(1, sizeof *w);
  if (!w) return number(env, -ENOMEM);
  w->env = env;
  int e = uv_poll_init(loop, &w->poll, fd);
  if (e != 0) {
    free(w);
    return number(env, e); /* libuv's codes are -errno on Linux */
  }
  e = uv_poll_start(&w->poll, UV_READABLE, on_readable);
  if (e != 0) {
    uv_close((uv_handle_t *)&w->poll, on_closed);
    return number(env, e);
  }
  napi_create_reference(env, a[1], 1, &w->callback);
  napi_create_object(env, &resource);
  napi_create_string_utf8(env, "lifeline.udpBatch", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, resource, name, &w->context);
  napi_create_external(env, w, watch_finalize, NULL, &handle);
  return handle;
}

static napi_value Unwatch(napi_env env, napi_callback_info info) {
  napi_value a[1];
  watch_t *w;
  if (get_args(env, info, 1, a) < 1 || napi_get_value_external(env, a[0], (void **)&w) != napi_ok || !w) return fail(env, "unwatch(handle)");
  if (w->stopped) return NULL;
  w->stopped = 1;
  uv_poll_stop(&w->poll);
  napi_delete_reference(env, w->callback);
  napi_async_destroy(env, w->context);
  uv_close((uv_handle_t *)&w->poll, on_closed);
  return NULL;
}

static napi_value Close(napi_env env, napi_callback_info info) {
  napi_value a[1];
  int32_t fd;
  if (get_args(env, info, 1, a) < 1 || !int_arg(env, a[0], &fd)) return fail(env, "close(fd)");
  return number(env, close(fd) < 0 ? -errno : 0);
}

NAPI_MODULE_INIT() {
  napi_property_descriptor d[] = {
    {"open", NULL, Open, NULL, NULL, NULL, napi_default, NULL},
    {"localPort", NULL, LocalPort, NULL, NULL, NULL, napi_default, NULL},
    {"recv", NULL, Recv, NULL, NULL, NULL, napi_default, NULL},
    {"send", NULL, Send, NULL, NULL, NULL, napi_default, NULL},
    {"watch", NULL, Watch, NULL, NULL, NULL, napi_default, NULL},
    {"unwatch", NULL, Unwatch, NULL, NULL, NULL, napi_default, NULL},
    {"close", NULL, Close, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof d / sizeof d[0], d);
  napi_value max;
  napi_create_int32(env, BATCH_MAX, &max);
  napi_set_named_property(env, exports, "BATCH_MAX", max);
  /* The meta layout's width: lib/batch-udp.ts refuses a build whose layout is not its own (a stale build). */
  napi_value fields;
  napi_create_int32(env, META_FIELDS, &fields);
  napi_set_named_property(env, exports, "META_FIELDS", fields);
  return exports;
}
