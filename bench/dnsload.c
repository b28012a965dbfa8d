/*
 * dnsload: the DNS benchmark's load generator. bench/dns.ts compiles it with the system C
 * compiler when one is there (else it falls back to its Node client). One thread, one UDP
 * socket bound to the devbox address, queries sent and answers read in batches
 * (sendmmsg/recvmmsg), so the client costs a fraction of what the server under test does
 * and the numbers describe the server, not the client.
 *
 *   dnsload -s ADDR -p PORT -b BIND -t TEMPLATE [-k CYCLE] [-l SECONDS] [-n MAX]
 *           [-q WINDOW] [-Q RATE]
 *
 * TEMPLATE is a name with one %u, replaced by the query's number modulo CYCLE (CYCLE 0:
 * never repeats, for uncached names). -Q 0 (default) is a closed loop with WINDOW queries in
 * flight; -Q N sends N queries/s on a schedule. Sending stops after SECONDS or MAX queries.
 * Prints one JSON object: sent, answered, lost, seconds (start to last answer), qps
 * (answered / seconds, so the wait for lost queries at the end is not counted), p50_us,
 * p99_us, rcodes (answers per RCODE 0..15) and with_answer (answers with ANCOUNT > 0). A
 * query unanswered after one second counts as lost.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
#define QMAX 300
#define MAX_IN_FLIGHT 60000

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Wire query for NAME, type A, RD, with an EDNS OPT (UDP 1232). Returns its length. */
static int build_query(uint8_t *out, const char *name, uint16_t id) {
  memset(out, 0, 12);
  out[0] = id >> 8;
  out[1] = id & 255;
  out[2] = 0x01;
  out[5] = 1;  /* qdcount */
  out[11] = 1; /* arcount */
  int p = 12;
  const char *s = name;
  while (*s) {
    const char *dot = strchr(s, '.');
    int len = dot ? (int)(dot - s) : (int)strlen(s);
    if (len == 0 || len > 63 || p + len + 2 > QMAX - 16) return -1;
    out[p++] = (uint8_t)len;
    memcpy(out + p, s, (size_t)len);
    p += len;
    s += len;
    if (*s == '.') s++;
  }
  out[p++] = 0;
  out[p++] = 0; out[p++] = 1; /* A */
  out[p++] = 0; out[p++] = 1; /* IN */
  out[p++] = 0;               /* root */
  out[p++] = 0; out[p++] = 41;
  out[p++] = 1232 >> 8; out[p++] = 1232 & 255;
  memset(out + p, 0, 6);
  p += 6;
  return p;
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  const char *server = "127.0.0.1", *bind_addr = "127.0.0.2", *tmpl = NULL;
  int port = 53, window = 256;
  unsigned cycle = 0;
  double seconds = 3, rate = 0;
  unsigned long max_queries = 1000000;
  int opt;
  while ((opt = getopt(argc, argv, "s:p:b:t:k:l:n:q:Q:")) != -1) {
    switch (opt) {
      case 's': server = optarg; break;
      case 'p': port = atoi(optarg); break;
      case 'b': bind_addr = optarg; break;
      case 't': tmpl = optarg; break;
      case 'k': cycle = (unsigned)strtoul(optarg, NULL, 10); break;
      case 'l': seconds = atof(optarg); break;
      case 'n': max_queries = strtoul(optarg, NULL, 10); break;
      case 'q': window = atoi(optarg); break;
      case 'Q': rate = atof(optarg); break;
      default: fprintf(stderr, "usage: see the comment at the top of dnsload.c\n"); return 2;
    }
  }
  if (!tmpl || window < 1 || window > MAX_IN_FLIGHT) { fprintf(stderr, "dnsload: -t TEMPLATE required, -q 1..60000\n"); return 2; }

  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  int bufsz = 8 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bufsz, sizeof bufsz);
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bufsz, sizeof bufsz);
  struct sockaddr_in local = {.sin_family = AF_INET}, dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  inet_pton(AF_INET, bind_addr, &local.sin_addr);
  inet_pton(AF_INET, server, &dst.sin_addr);
  if (bind(fd, (struct sockaddr *)&local, sizeof local) != 0) { perror("dnsload: bind"); return 1; }
  if (connect(fd, (struct sockaddr *)&dst, sizeof dst) != 0) { perror("dnsload: connect"); return 1; }

  /* A repeating cycle is built once; unique names are built as they are sent. */
  unsigned prebuilt = cycle > 0 && cycle <= 100000 ? cycle : 0;
  uint8_t (*pre)[QMAX] = prebuilt ? malloc((size_t)prebuilt * QMAX) : NULL;
  int *prelen = prebuilt ? malloc(prebuilt * sizeof(int)) : NULL;
  char name[256];
  for (unsigned i = 0; i < prebuilt; i++) {
    snprintf(name, sizeof name, tmpl, i);
    prelen[i] = build_query(pre[i], name, 0);
    if (prelen[i] < 0) { fprintf(stderr, "dnsload: bad name %s\n", name); return 2; }
  }

  uint64_t *sent_at = calloc(65536, sizeof(uint64_t));
  uint32_t *lat = malloc(max_queries * sizeof(uint32_t));
  unsigned long sent = 0, answered = 0, lost = 0, nlat = 0, with_answer = 0, rcodes[16] = {0};
  int outstanding = 0;
  uint16_t next_id = 0;
  uint8_t sbuf[BATCH][QMAX], rbuf[BATCH][1500];
  struct mmsghdr smsg[BATCH], rmsg[BATCH];
  struct iovec siov[BATCH], riov[BATCH];
  for (int i = 0; i < BATCH; i++) {
    riov[i].iov_base = rbuf[i];
    riov[i].iov_len = sizeof rbuf[i];
    memset(&rmsg[i], 0, sizeof rmsg[i]);
    rmsg[i].msg_hdr.msg_iov = &riov[i];
    rmsg[i].msg_hdr.msg_iovlen = 1;
  }

  uint64_t start = now_ns(), deadline = start + (uint64_t)(seconds * 1e9), last_reap = start, last_answer = start;
  int stopping = 0;
  for (;;) {
    uint64_t t = now_ns();
    if (t >= deadline || sent >= max_queries) stopping = 1;
    if (stopping && outstanding == 0) break;
    /* Send what the window (closed loop) or the schedule (fixed rate) allows. */
    unsigned long want = 0;
    if (!stopping) {
      if (rate > 0) {
        unsigned long due = (unsigned long)((double)(t - start) / 1e9 * rate);
        if (due > max_queries) due = max_queries;
        want = due > sent ? due - sent : 0;
        /* Ids are 16 bits: never have more in flight than there are free ids. */
        if (outstanding + want > MAX_IN_FLIGHT) want = outstanding < MAX_IN_FLIGHT ? MAX_IN_FLIGHT - (unsigned long)outstanding : 0;
      } else {
        want = outstanding < window ? (unsigned long)(window - outstanding) : 0;
        if (sent + want > max_queries) want = max_queries - sent;
      }
    }
    while (want > 0) {
      int n = want > BATCH ? BATCH : (int)want;
      uint16_t ids[BATCH];
      for (int i = 0; i < n; i++) {
        unsigned long q = sent + (unsigned long)i;
        int len;
        if (prebuilt) {
          len = prelen[q % prebuilt];
          memcpy(sbuf[i], pre[q % prebuilt], (size_t)len);
        } else {
          snprintf(name, sizeof name, tmpl, cycle ? (unsigned)(q % cycle) : (unsigned)q);
          len = build_query(sbuf[i], name, 0);
        }
        /* Skip ids still in flight (a lost answer holds its id until it is reaped). */
        while (sent_at[next_id] != 0) next_id++;
        ids[i] = next_id;
        sent_at[next_id] = 1; /* taken; the send time is set just before sendmmsg */
        sbuf[i][0] = next_id >> 8;
        sbuf[i][1] = next_id & 255;
        next_id++;
        siov[i].iov_base = sbuf[i];
        siov[i].iov_len = (size_t)len;
        memset(&smsg[i], 0, sizeof smsg[i]);
        smsg[i].msg_hdr.msg_iov = &siov[i];
        smsg[i].msg_hdr.msg_iovlen = 1;
      }
      uint64_t st = now_ns();
      for (int i = 0; i < n; i++) sent_at[ids[i]] = st;
      int r = sendmmsg(fd, smsg, (unsigned)n, 0);
      if (r < 0) r = 0;
      /* Not sent: free the ids taken for the rest of this batch. */
      for (int i = r; i < n; i++) sent_at[ids[i]] = 0;
      sent += (unsigned long)r;
      outstanding += r;
      want -= (unsigned long)r;
      if (r < n) break;
    }
    /* Read answers. */
    int got = recvmmsg(fd, rmsg, BATCH, MSG_DONTWAIT, NULL);
    if (got > 0) {
      uint64_t rt = now_ns();
      for (int i = 0; i < got; i++) {
        if (rmsg[i].msg_len < 12) continue;
        uint16_t id = (uint16_t)((rbuf[i][0] << 8) | rbuf[i][1]);
        if (sent_at[id] == 0) continue;
        uint64_t d = rt - sent_at[id];
        sent_at[id] = 0;
        outstanding--;
        answered++;
        last_answer = rt;
        rcodes[rbuf[i][3] & 15]++;
        if (rbuf[i][6] != 0 || rbuf[i][7] != 0) with_answer++;
        if (nlat < max_queries) lat[nlat++] = (uint32_t)(d / 100); /* 0.1 µs units */
      }
    } else if (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != ECONNREFUSED) {
      perror("dnsload: recvmmsg");
      return 1;
    } else {
      /* Nothing to read: wait for an answer, or (fixed rate) until the next send is due,
       * so an answer is timestamped when it arrives, not when a sleep ends. */
      struct pollfd p = {.fd = fd, .events = POLLIN};
      struct timespec ts = {0, 1000000};
      if (rate > 0 && !stopping) {
        uint64_t next_due = start + (uint64_t)((double)(sent + 1) * 1e9 / rate), now = now_ns();
        uint64_t wait = next_due > now ? next_due - now : 0;
        if (wait < (uint64_t)ts.tv_nsec) ts.tv_nsec = (long)wait;
      }
      ppoll(&p, 1, &ts, NULL);
    }
    if (t - last_reap > 250000000ull) {
      last_reap = t;
      /* Send times can be later than t (taken just before sendmmsg): compare without underflow. */
      for (int i = 0; i < 65536; i++) {
        if (sent_at[i] != 0 && sent_at[i] + 1000000000ull < t) {
          sent_at[i] = 0;
          outstanding--;
          lost++;
        }
      }
    }
  }
  double secs = (double)(last_answer - start) / 1e9;
  qsort(lat, nlat, sizeof(uint32_t), cmp_u32);
  double p50 = nlat ? lat[nlat / 2] / 10.0 : -1, p99 = nlat ? lat[(size_t)(nlat * 0.99)] / 10.0 : -1;
  printf("{\"sent\":%lu,\"answered\":%lu,\"lost\":%lu,\"seconds\":%.4f,\"qps\":%.1f,\"p50_us\":%.1f,\"p99_us\":%.1f,\"with_answer\":%lu,\"rcodes\":[",
         sent, answered, lost, secs, secs > 0 ? answered / secs : 0.0, p50, p99, with_answer);
  for (int i = 0; i < 16; i++) printf(i ? ",%lu" : "%lu", rcodes[i]);
  printf("]}\n");
  return 0;
}
