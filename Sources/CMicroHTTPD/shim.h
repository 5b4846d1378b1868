#ifndef ASYNCQUEUE_CMICROHTTPD_SHIM_H
#define ASYNCQUEUE_CMICROHTTPD_SHIM_H

#include <stdarg.h>
#include <stdint.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/types.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <microhttpd.h>

/// Creates a TCP socket bound to `host` (an IPv4 or IPv6 literal) and `port`, and listens on it.
/// Port 0 picks a free port. Returns the socket, or -1 with errno set (EINVAL for a host that
/// is not an address literal). On success `*is_ipv6` and `*bound_port` describe the socket.
/// The IPv6 wildcard "::" accepts IPv4 connections too (IPV6_V6ONLY off).
static inline int aq_listen_socket(const char *host, uint16_t port, int backlog, int *is_ipv6,
                                   uint16_t *bound_port) {
  struct sockaddr_storage address;
  socklen_t length;
  memset(&address, 0, sizeof(address));
  struct sockaddr_in *v4 = (struct sockaddr_in *)&address;
  struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&address;
  if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    length = sizeof(*v4);
    *is_ipv6 = 0;
  } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    length = sizeof(*v6);
    *is_ipv6 = 1;
  } else {
    errno = EINVAL;
    return -1;
  }

  int fd = socket(address.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int on = 1;
  int off = 0;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
  if (*is_ipv6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
  if (bind(fd, (struct sockaddr *)&address, length) != 0 || listen(fd, backlog) != 0) {
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
  }

  struct sockaddr_storage bound;
  socklen_t bound_length = sizeof(bound);
  if (getsockname(fd, (struct sockaddr *)&bound, &bound_length) != 0) {
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
  }
  if (bound.ss_family == AF_INET6) {
    *bound_port = ntohs(((struct sockaddr_in6 *)&bound)->sin6_port);
  } else {
    *bound_port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
  }
  return fd;
}

/// Starts a daemon on an already listening socket, which the daemon then owns and closes in
/// MHD_stop_daemon. Wraps the variadic MHD_start_daemon, which Swift cannot call.
static inline struct MHD_Daemon *aq_mhd_start(unsigned int flags, int listen_fd,
                                              MHD_AccessHandlerCallback handler,
                                              void *handler_context,
                                              MHD_RequestCompletedCallback completed,
                                              void *completed_context,
                                              unsigned int connection_limit,
                                              unsigned int connection_timeout_seconds) {
  struct MHD_OptionItem options[] = {
      {MHD_OPTION_LISTEN_SOCKET, listen_fd, NULL},
      {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)completed, completed_context},
      {MHD_OPTION_CONNECTION_LIMIT, connection_limit, NULL},
      {MHD_OPTION_CONNECTION_TIMEOUT, connection_timeout_seconds, NULL},
      {MHD_OPTION_END, 0, NULL},
  };
  return MHD_start_daemon(flags, 0, NULL, NULL, handler, handler_context, MHD_OPTION_ARRAY,
                          options, MHD_OPTION_END);
}

/// Writes the client's IP address as text into `buffer`. Returns 0, or -1 when the address
/// is unavailable. Wraps the variadic MHD_get_connection_info.
static inline int aq_mhd_client_address(struct MHD_Connection *connection, char *buffer,
                                        socklen_t capacity) {
  const union MHD_ConnectionInfo *info =
      MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  if (info == NULL || info->client_addr == NULL) return -1;
  const struct sockaddr *address = info->client_addr;
  const void *raw;
  if (address->sa_family == AF_INET) {
    raw = &((const struct sockaddr_in *)address)->sin_addr;
  } else if (address->sa_family == AF_INET6) {
    raw = &((const struct sockaddr_in6 *)address)->sin6_addr;
  } else {
    return -1;
  }
  return inet_ntop(address->sa_family, raw, buffer, capacity) == NULL ? -1 : 0;
}

#endif
