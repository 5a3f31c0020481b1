/* The limit for greenhub.pg: libpq's own blocking loop in C.
   pg_loop CONNINFO N [prepared] -> seconds for N "SELECT $1::int" round
   trips (PQexecParams, or PQexecPrepared on a statement prepared once) */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(int argc, char **argv) {
  if (argc < 3) { fprintf(stderr, "usage: pg_loop conninfo n\n"); return 2; }
  PGconn *c = PQconnectdb(argv[1]);
  if (PQstatus(c) != CONNECTION_OK) { fprintf(stderr, "%s", PQerrorMessage(c)); return 1; }
  int n = atoi(argv[2]);
  int prepared = argc > 3;
  if (prepared) PQclear(PQprepare(c, "s", "SELECT $1::int", 1, NULL));
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  for (int i = 0; i < n; i++) {
    char v[16];
    snprintf(v, sizeof v, "%d", i);
    const char *p[1] = {v};
    PGresult *r = prepared ? PQexecPrepared(c, "s", 1, p, NULL, NULL, 0)
                           : PQexecParams(c, "SELECT $1::int", 1, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || atoi(PQgetvalue(r, 0, 0)) != i) {
      fprintf(stderr, "bad result: %s", PQresultErrorMessage(r));
      return 1;
    }
    PQclear(r);
  }
  clock_gettime(CLOCK_MONOTONIC, &b);
  printf("%.6f\n", (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9);
  PQfinish(c);
  return 0;
}
