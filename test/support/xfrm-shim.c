/*
 * Test-only LD_PRELOAD shim for charon (strongSwan) in the interop tests: this kernel has no
 * ESP AEAD (rfc4106(gcm(aes))), so real XFRM_MSG_NEWSA fails and charon would delete every
 * CHILD_SA it negotiates (shared/reference/strongswan-on-this-machine.md). The shim stands in for
 * the kernel's XFRM netlink family only:
 *
 *   socket(AF_NETLINK, SOCK_RAW, NETLINK_XFRM)  -> one end of an AF_UNIX datagram socketpair
 *   sendto/send/sendmsg on it                    -> answered on the other end:
 *       XFRM_MSG_ALLOCSPI                        -> XFRM_MSG_NEWSA carrying a fresh SPI in [min, max]
 *       XFRM_MSG_GETSA / GETPOLICY / GETAE       -> NLMSG_ERROR -ENOENT (no usage counters here)
 *       anything else (NEWSA, UPDSA, DELSA, NEWPOLICY, DELPOLICY, FLUSH*) -> NLMSG_ERROR 0 (success)
 *   bind/setsockopt on it                        -> 0
 * Every other socket (NETLINK_ROUTE, the IKE UDP sockets) is the real one. Written for Lifeline's
 * tests (test/support/strongswan.ts compiles it with cc into a temporary directory).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <linux/netlink.h>
#include <linux/xfrm.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define MAX_FD 4096

static int kernel_end[MAX_FD]; /* 0 = not ours; else other end + 1 */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static uint32_t spi_counter = 0x1000;

static int (*real_socket)(int, int, int);
static int (*real_close)(int);
static ssize_t (*real_sendto)(int, const void *, size_t, int, const struct sockaddr *, socklen_t);
static ssize_t (*real_send)(int, const void *, size_t, int);
static ssize_t (*real_sendmsg)(int, const struct msghdr *, int);
static int (*real_bind)(int, const struct sockaddr *, socklen_t);
static int (*real_setsockopt)(int, int, int, const void *, socklen_t);

static void init(void) {
  if (real_socket) return;
  real_socket = dlsym(RTLD_NEXT, "socket");
  real_close = dlsym(RTLD_NEXT, "close");
  real_sendto = dlsym(RTLD_NEXT, "sendto");
  real_send = dlsym(RTLD_NEXT, "send");
  real_sendmsg = dlsym(RTLD_NEXT, "sendmsg");
  real_bind = dlsym(RTLD_NEXT, "bind");
  real_setsockopt = dlsym(RTLD_NEXT, "setsockopt");
}

static int fake(int fd) { return fd >= 0 && fd < MAX_FD && kernel_end[fd] != 0; }

int socket(int domain, int type, int protocol) {
  init();
  if (domain == AF_NETLINK && protocol == NETLINK_XFRM) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_DGRAM | (type & SOCK_CLOEXEC), 0, sv) != 0) return -1;
    if (sv[0] >= MAX_FD) { real_close(sv[0]); real_close(sv[1]); errno = EMFILE; return -1; }
    kernel_end[sv[0]] = sv[1] + 1;
    return sv[0];
  }
  return real_socket(domain, type, protocol);
}

int close(int fd) {
  init();
  if (fake(fd)) {
    real_close(kernel_end[fd] - 1);
    kernel_end[fd] = 0;
  }
  return real_close(fd);
}

int bind(int fd, const struct sockaddr *a, socklen_t l) {
  init();
  return fake(fd) ? 0 : real_bind(fd, a, l);
}

int setsockopt(int fd, int level, int name, const void *v, socklen_t l) {
  init();
  return fake(fd) ? 0 : real_setsockopt(fd, level, name, v, l);
}

static void reply(int fd, const void *msg, size_t len) { real_send(kernel_end[fd] - 1, msg, len, MSG_DONTWAIT); }

static void answer_error(int fd, const struct nlmsghdr *req, int error) {
  char buf[NLMSG_SPACE(sizeof(struct nlmsgerr))];
  memset(buf, 0, sizeof(buf));
  struct nlmsghdr *h = (struct nlmsghdr *)buf;
  h->nlmsg_len = NLMSG_LENGTH(sizeof(struct nlmsgerr));
  h->nlmsg_type = NLMSG_ERROR;
  h->nlmsg_seq = req->nlmsg_seq;
  h->nlmsg_pid = req->nlmsg_pid;
  struct nlmsgerr *e = NLMSG_DATA(h);
  e->error = error;
  e->msg = *req;
  reply(fd, buf, h->nlmsg_len);
}

static void answer_allocspi(int fd, const struct nlmsghdr *req) {
  const struct xfrm_userspi_info *in = NLMSG_DATA(req);
  char buf[NLMSG_SPACE(sizeof(struct xfrm_usersa_info))];
  memset(buf, 0, sizeof(buf));
  struct nlmsghdr *h = (struct nlmsghdr *)buf;
  h->nlmsg_len = NLMSG_LENGTH(sizeof(struct xfrm_usersa_info));
  h->nlmsg_type = XFRM_MSG_NEWSA;
  h->nlmsg_seq = req->nlmsg_seq;
  h->nlmsg_pid = req->nlmsg_pid;
  struct xfrm_usersa_info *out = NLMSG_DATA(h);
  *out = in->info;
  pthread_mutex_lock(&lock);
  uint32_t span = in->max - in->min;
  uint32_t spi = in->min + (span ? (spi_counter++ % span) : 0);
  pthread_mutex_unlock(&lock);
  out->id.spi = htonl(spi);
  reply(fd, buf, h->nlmsg_len);
}

static void handle(int fd, const void *data, size_t len) {
  const struct nlmsghdr *h = data;
  size_t left = len;
  while (NLMSG_OK(h, left)) {
    switch (h->nlmsg_type) {
      case XFRM_MSG_ALLOCSPI:
        answer_allocspi(fd, h);
        break;
      case XFRM_MSG_GETSA:
      case XFRM_MSG_GETPOLICY:
      case XFRM_MSG_GETAE:
        answer_error(fd, h, -ENOENT);
        break;
      default:
        answer_error(fd, h, 0);
        break;
    }
    h = NLMSG_NEXT(h, left);
  }
}

ssize_t sendto(int fd, const void *buf, size_t len, int flags, const struct sockaddr *a, socklen_t l) {
  init();
  if (!fake(fd)) return real_sendto(fd, buf, len, flags, a, l);
  handle(fd, buf, len);
  return (ssize_t)len;
}

ssize_t send(int fd, const void *buf, size_t len, int flags) {
  init();
  if (!fake(fd)) return real_send(fd, buf, len, flags);
  handle(fd, buf, len);
  return (ssize_t)len;
}

ssize_t sendmsg(int fd, const struct msghdr *m, int flags) {
  init();
  if (!fake(fd)) return real_sendmsg(fd, m, flags);
  char buf[65536];
  size_t n = 0;
  for (size_t i = 0; i < m->msg_iovlen && n < sizeof(buf); i++) {
    size_t c = m->msg_iov[i].iov_len;
    if (c > sizeof(buf) - n) c = sizeof(buf) - n;
    memcpy(buf + n, m->msg_iov[i].iov_base, c);
    n += c;
  }
  handle(fd, buf, n);
  return (ssize_t)n;
}
