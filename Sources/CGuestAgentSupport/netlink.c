// Minimal rtnetlink for the guest agent: link, address and route changes, one
// request per call, each acknowledged. Only what ConfigureNetwork needs.
#define _GNU_SOURCE
#include "CGuestAgentSupport.h"
#include "fdwait.h"

#include <errno.h>
#include <net/if.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define QB_NL_BUFSIZE 4096

struct qb_nl_request {
    struct nlmsghdr header;
    char payload[QB_NL_BUFSIZE - sizeof(struct nlmsghdr)];
};

static int qb_nl_attr(struct nlmsghdr *h, unsigned short type, const void *data, size_t len) {
    size_t aligned = NLMSG_ALIGN(h->nlmsg_len);
    size_t total = RTA_LENGTH(len);
    if (aligned + RTA_ALIGN(total) > QB_NL_BUFSIZE) return -1;
    struct rtattr *attr = (struct rtattr *)((char *)h + aligned);
    attr->rta_type = type;
    attr->rta_len = (unsigned short)total;
    if (len) memcpy(RTA_DATA(attr), data, len);
    h->nlmsg_len = (unsigned)(aligned + RTA_ALIGN(total));
    return 0;
}

/* Sends one request and waits for its acknowledgement. Returns 0 or an errno value. */
static int qb_nl_transact(struct nlmsghdr *h) {
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd < 0) return errno;
    struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
    h->nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
    h->nlmsg_seq = 1;
    ssize_t sent;
    do { sent = sendto(fd, h, h->nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof(kernel)); } while (sent < 0 && errno == EINTR);
    if (sent < 0) { int e = errno; close(fd); return e; }
    char buffer[QB_NL_BUFSIZE];
    for (;;) {
        ssize_t n;
        do { n = recv(fd, buffer, sizeof(buffer), 0); } while (n < 0 && errno == EINTR);
        if (n < 0) { int e = errno; close(fd); return e; }
        for (struct nlmsghdr *r = (struct nlmsghdr *)buffer; NLMSG_OK(r, (unsigned)n); r = NLMSG_NEXT(r, n)) {
            if (r->nlmsg_seq != 1) continue;
            if (r->nlmsg_type == NLMSG_ERROR) {
                if (r->nlmsg_len < NLMSG_LENGTH(sizeof(struct nlmsgerr))) { close(fd); return EPROTO; }
                struct nlmsgerr *err = (struct nlmsgerr *)NLMSG_DATA(r);
                close(fd);
                return err->error < 0 ? -err->error : 0;
            }
            if (r->nlmsg_type == NLMSG_DONE) { close(fd); return 0; }
        }
    }
}

int qb_nl_link_set(int ifindex, const char *name, const unsigned char *mac, unsigned int mtu, int up) {
    struct qb_nl_request req;
    memset(&req, 0, sizeof(req));
    req.header.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifinfomsg));
    req.header.nlmsg_type = RTM_NEWLINK;
    struct ifinfomsg *info = NLMSG_DATA(&req.header);
    info->ifi_family = AF_UNSPEC;
    info->ifi_index = ifindex;
    if (up >= 0) {
        info->ifi_change = IFF_UP;
        info->ifi_flags = up ? IFF_UP : 0;
    }
    if (name && name[0]) {
        size_t len = strlen(name);
        if (len >= IFNAMSIZ) return ENAMETOOLONG;
        if (qb_nl_attr(&req.header, IFLA_IFNAME, name, len + 1) != 0) return E2BIG;
    }
    if (mac && qb_nl_attr(&req.header, IFLA_ADDRESS, mac, 6) != 0) return E2BIG;
    if (mtu && qb_nl_attr(&req.header, IFLA_MTU, &mtu, sizeof(mtu)) != 0) return E2BIG;
    return qb_nl_transact(&req.header);
}

/* The address length of `family` (4 or 16 bytes) if `prefix_length` fits it. */
static int qb_nl_address_length(int family, int prefix_length, size_t *len) {
    if (family != AF_INET && family != AF_INET6) return EAFNOSUPPORT;
    *len = family == AF_INET ? 4 : 16;
    if (prefix_length < 0 || (size_t)prefix_length > *len * 8) return EINVAL;
    return 0;
}

/* A zeroed create-or-replace request of `type` with a `body`-byte header. */
static void qb_nl_begin(struct qb_nl_request *req, unsigned short type, size_t body) {
    memset(req, 0, sizeof(*req));
    req->header.nlmsg_len = (unsigned)NLMSG_LENGTH(body);
    req->header.nlmsg_type = type;
    req->header.nlmsg_flags = NLM_F_CREATE | NLM_F_REPLACE;
}

int qb_nl_addr_add(int ifindex, int family, const unsigned char *address, int prefix_length) {
    size_t len;
    int err = qb_nl_address_length(family, prefix_length, &len);
    if (err) return err;
    struct qb_nl_request req;
    qb_nl_begin(&req, RTM_NEWADDR, sizeof(struct ifaddrmsg));
    struct ifaddrmsg *msg = NLMSG_DATA(&req.header);
    msg->ifa_family = (unsigned char)family;
    msg->ifa_prefixlen = (unsigned char)prefix_length;
    msg->ifa_index = (unsigned)ifindex;
    msg->ifa_scope = RT_SCOPE_UNIVERSE;
    msg->ifa_flags = family == AF_INET6 ? IFA_F_NODAD : 0;
    if (qb_nl_attr(&req.header, IFA_LOCAL, address, len) != 0) return E2BIG;
    if (qb_nl_attr(&req.header, IFA_ADDRESS, address, len) != 0) return E2BIG;
    if (family == AF_INET && prefix_length < 31) {
        unsigned char broadcast[4];
        for (int i = 0; i < 4; i++) {
            int bits = prefix_length - i * 8;
            unsigned char mask = bits >= 8 ? 0xff : bits <= 0 ? 0 : (unsigned char)(0xff << (8 - bits));
            broadcast[i] = (unsigned char)(address[i] | (unsigned char)~mask);
        }
        if (qb_nl_attr(&req.header, IFA_BROADCAST, broadcast, 4) != 0) return E2BIG;
    }
    return qb_nl_transact(&req.header);
}

int qb_nl_route_add(int family, const unsigned char *destination, int prefix_length,
                    const unsigned char *gateway, int ifindex, unsigned int metric) {
    size_t len;
    int err = qb_nl_address_length(family, prefix_length, &len);
    if (err) return err;
    struct qb_nl_request req;
    qb_nl_begin(&req, RTM_NEWROUTE, sizeof(struct rtmsg));
    struct rtmsg *msg = NLMSG_DATA(&req.header);
    msg->rtm_family = (unsigned char)family;
    msg->rtm_dst_len = (unsigned char)prefix_length;
    msg->rtm_table = RT_TABLE_MAIN;
    msg->rtm_protocol = RTPROT_STATIC;
    msg->rtm_scope = gateway ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK;
    msg->rtm_type = RTN_UNICAST;
    if (prefix_length > 0 && qb_nl_attr(&req.header, RTA_DST, destination, len) != 0) return E2BIG;
    if (gateway && qb_nl_attr(&req.header, RTA_GATEWAY, gateway, len) != 0) return E2BIG;
    if (ifindex > 0) {
        unsigned int oif = (unsigned int)ifindex;
        if (qb_nl_attr(&req.header, RTA_OIF, &oif, sizeof(oif)) != 0) return E2BIG;
    }
    if (metric && qb_nl_attr(&req.header, RTA_PRIORITY, &metric, sizeof(metric)) != 0) return E2BIG;
    return qb_nl_transact(&req.header);
}

/* Kernel uevents (a device added or removed), for waiting on hot-added disks. */
int qb_uevent_open(void) {
    int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_KOBJECT_UEVENT);
    if (fd < 0) return -1;
    struct sockaddr_nl local = { .nl_family = AF_NETLINK, .nl_groups = 1 };
    if (bind(fd, (struct sockaddr *)&local, sizeof(local)) < 0) return qb_close_failed(fd);
    return fd;
}

int qb_uevent_wait(int fd, int timeout_ms) {
    int n = qb_poll_readable(fd, timeout_ms);
    if (n <= 0) return n;
    char buffer[8192];
    while (recv(fd, buffer, sizeof(buffer), 0) > 0) {}
    return 1;
}
