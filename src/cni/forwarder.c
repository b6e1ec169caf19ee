/* The CNI plugin on the host: a static forwarder, so a node with neither Node.js nor iptables can run it. It sends
 * the CNI variables and the network config to the node agent's socket (the config's "agentSocket", else the
 * default) in the format of src/cni/wire.ts, then prints the agent's stdout and stderr and exits with its code.
 * VERSION is answered here; without the agent, STATUS says "not available" (code 50) and ADD fails closed. Every
 * failure, a dropped connection included, is an error object on stdout and exit 1: the runtime reads stdout. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#define DEFAULT_SOCKET "/run/sidecar-redirect/agent.sock"
/* The node agent reads at most this much of a request (src/cni/server.ts) and drops the connection beyond it, so a
 * request that could not fit is refused here, before connecting. */
#define MAX_REQUEST_BYTES (1 << 20)
/* The agent's reply: a CNI result and its log lines. */
#define MAX_REPLY_BYTES (16 << 20)
/* Longer than any init the agent runs (ISTIO_EXEC_TIMEOUT bounds each tool); a hung agent must not hang the runtime. */
#define TIMEOUT_SECONDS 120

static const char *VARIABLES[] = {"CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS", "CNI_PATH"};

static char version[32] = "1.1.0";

/* Prints text as a JSON string: details may hold a path from the config. */
static void print_json_string(const char *text) {
  putchar('"');
  for (const unsigned char *c = (const unsigned char *)text; *c; c++) {
    if (*c == '"' || *c == '\\') printf("\\%c", *c);
    else if (*c < 0x20) printf("\\u%04x", *c);
    else putchar(*c);
  }
  putchar('"');
}

/* The spec's error object on stdout (where the runtime reads it), the same line on stderr, and exit status 1. */
static int fail(int code, const char *msg, const char *details) {
  printf("{\"cniVersion\":");
  print_json_string(version);
  printf(",\"code\":%d,\"msg\":", code);
  print_json_string(msg);
  printf(",\"details\":");
  print_json_string(details);
  printf("}\n");
  fprintf(stderr, "sidecar-redirect: %s: %s\n", msg, details);
  return 1;
}

/* Reads a JSON string at *p into out (no escapes: a path or version with one is refused); 0 on success, and out
 * is changed only then. */
static int read_string(const char **p, char *out, size_t size) {
  const char *s = *p + 1;
  size_t n = 0;
  if (**p != '"') return -1;
  for (; s[n] != '"'; n++)
    if (s[n] == '\0' || s[n] == '\\' || n + 1 >= size) return -1;
  memcpy(out, s, n);
  out[n] = '\0';
  *p = s + n + 1;
  return 0;
}

/* Skips one JSON value (or, from a key, the rest of its pair) up to the next top-level ',' or the closing '}'. */
static void skip_value(const char **p) {
  const char *s = *p;
  int depth = 0;
  for (; *s; s++) {
    if (*s == '"') {
      for (s++; *s && *s != '"'; s++)
        if (*s == '\\' && s[1]) s++;
      if (!*s) break;
    } else if (*s == '{' || *s == '[') {
      depth++;
    } else if (*s == '}' || *s == ']') {
      if (depth == 0) break;
      depth--;
    } else if (*s == ',' && depth == 0) {
      break;
    }
  }
  *p = s;
}

/* Finds the top-level string fields cniVersion and agentSocket of the config; -1 when agentSocket cannot be used.
 * Anything else malformed is left for the agent to report. */
static int scan_config(const char *json, char *socket_path, size_t size) {
  const char *p = json;
  char key[64];
  while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
  if (*p++ != '{') return 0;
  for (;;) {
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == ',') p++;
    if (*p != '"') return 0;
    if (read_string(&p, key, sizeof key) != 0) {
      skip_value(&p); /* a key too long (or escaped) to be one of ours: skip its whole pair */
      continue;
    }
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
    if (*p++ != ':') return 0;
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
    if (strcmp(key, "agentSocket") == 0) {
      if (read_string(&p, socket_path, size) != 0 || socket_path[0] != '/') return -1;
    } else if (strcmp(key, "cniVersion") == 0 && *p == '"') {
      if (read_string(&p, version, sizeof version) != 0) skip_value(&p);
    } else {
      skip_value(&p);
    }
  }
}

/* Reads fd to its end, NUL-terminated; NULL on a read error. Past `max` bytes it stops reading and sets *over:
 * never a silent cut. */
static char *read_all(int fd, size_t max, size_t *length, int *over) {
  size_t cap = 65536, n = 0;
  char *buf = malloc(cap + 1);
  ssize_t got;
  *over = 0;
  while (buf && (got = read(fd, buf + n, cap - n)) != 0) {
    if (got < 0) {
      if (errno == EINTR) continue;
      free(buf);
      return NULL;
    }
    n += (size_t)got;
    if (n > max) {
      *over = 1;
      break;
    }
    if (n == cap) {
      cap = cap * 2 > max + 1 ? max + 1 : cap * 2;
      char *bigger = realloc(buf, cap + 1);
      if (!bigger) free(buf);
      buf = bigger;
    }
  }
  if (buf) buf[n] = '\0';
  *length = n;
  return buf;
}

static int write_all(int fd, const char *data, size_t length) {
  while (length > 0) {
    ssize_t put = write(fd, data, length);
    if (put < 0 && errno == EINTR) continue;
    if (put <= 0) return -1;
    data += put;
    length -= (size_t)put;
  }
  return 0;
}

/* Without the agent nothing kept outside the netns exists, and with no netns left there is nothing to remove. */
static int agent_unreachable(const char *command, const char *socket_path) {
  const char *netns = getenv("CNI_NETNS");
  struct stat st;
  if (strcmp(command, "GC") == 0) return 0;
  if (strcmp(command, "DEL") == 0 && (netns == NULL || *netns == '\0' || stat(netns, &st) != 0)) return 0;
  if (strcmp(command, "STATUS") == 0) return fail(50, "the sidecar-redirect node agent is not reachable, so pods cannot be captured", socket_path);
  return fail(11, "the sidecar-redirect node agent is not reachable; failing closed rather than starting the pod uncaptured", socket_path);
}

int main(void) {
  const char *command = getenv("CNI_COMMAND");
  char socket_path[sizeof(((struct sockaddr_un *)0)->sun_path)] = DEFAULT_SOCKET;
  size_t stdin_length = 0, request_length = 1;
  int over = 0;
  /* A connection the agent drops (or a runtime that closes our stdout) is an error to report, not a signal to die of. */
  signal(SIGPIPE, SIG_IGN);
  char *config = read_all(0, MAX_REQUEST_BYTES, &stdin_length, &over);
  if (!config) return fail(5, "could not read the network config on stdin", "");
  int scanned = scan_config(config, socket_path, sizeof socket_path);
  if (over) return fail(7, "the network config on stdin is larger than the node agent accepts", "limit: 1048576 bytes");
  if (scanned != 0) return fail(7, "agentSocket must be an absolute path of at most 107 bytes with no quote or backslash", "");
  if (command == NULL) return fail(4, "CNI_COMMAND is not set", "");
  for (size_t i = 0; i < sizeof VARIABLES / sizeof *VARIABLES; i++) {
    const char *value = getenv(VARIABLES[i]);
    if (value) request_length += strlen(VARIABLES[i]) + 1 + strlen(value) + 1;
  }
  if (request_length + stdin_length > MAX_REQUEST_BYTES)
    return fail(4, "the CNI variables and the network config together are larger than the node agent accepts", "limit: 1048576 bytes");
  if (strcmp(command, "VERSION") == 0) {
    printf("{\"cniVersion\":\"%s\",\"supportedVersions\":[\"1.0.0\",\"1.1.0\"]}\n", version);
    return 0;
  }

  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un address = {.sun_family = AF_UNIX};
  struct timeval timeout = {.tv_sec = TIMEOUT_SECONDS};
  if (fd < 0) return fail(5, "could not create a unix socket", "");
  strncpy(address.sun_path, socket_path, sizeof address.sun_path - 1);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  if (connect(fd, (struct sockaddr *)&address, sizeof address) != 0) return agent_unreachable(command, socket_path);

  for (size_t i = 0; i < sizeof VARIABLES / sizeof *VARIABLES; i++) {
    const char *value = getenv(VARIABLES[i]);
    if (value == NULL) continue;
    if (write_all(fd, VARIABLES[i], strlen(VARIABLES[i])) || write_all(fd, "=", 1) || write_all(fd, value, strlen(value) + 1))
      return fail(11, "could not send the request to the node agent", socket_path);
  }
  if (write_all(fd, "", 1) || write_all(fd, config, stdin_length) || shutdown(fd, SHUT_WR) != 0)
    return fail(11, "could not send the request to the node agent", socket_path);

  size_t reply_length = 0;
  char *reply = read_all(fd, MAX_REPLY_BYTES, &reply_length, &over);
  int exit_code = 0;
  size_t stdout_length = 0;
  char *body = reply && !over ? memchr(reply, '\n', reply_length) : NULL;
  if (!body || sscanf(reply, "%d %zu", &exit_code, &stdout_length) != 2 || stdout_length > reply_length - (size_t)(body + 1 - reply))
    return fail(11, "the node agent's reply was cut short, too long or not understood", socket_path);
  body++;
  write_all(1, body, stdout_length);
  write_all(2, body + stdout_length, reply_length - (size_t)(body - reply) - stdout_length);
  return exit_code;
}
