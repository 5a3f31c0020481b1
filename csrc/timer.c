/*
 * timer.c - binary min-heap of timers ordered by (deadline, seq).
 *
 * Each timer knows its slot, so cancel is O(log n) and leaves no garbage.
 * Pure data structure: no Lua, no clock, no I/O.
 */
#include <stdlib.h>
#include <stdint.h>

#include "greenhub.h"

static int timer_less(const gh_timer *a, const gh_timer *b) {
  return a->deadline < b->deadline ||
         (a->deadline == b->deadline && a->seq < b->seq);
}

static void heap_set(gh_heap *hp, uint32_t i, gh_timer *tm) {
  hp->v[i] = tm;
  tm->idx = i;
}

static void sift_up(gh_heap *hp, uint32_t i) {
  gh_timer *tm = hp->v[i];
  while (i > 1 && timer_less(tm, hp->v[i / 2])) {
    heap_set(hp, i, hp->v[i / 2]);
    i /= 2;
  }
  heap_set(hp, i, tm);
}

static void sift_down(gh_heap *hp, uint32_t i) {
  gh_timer *tm = hp->v[i];
  for (;;) {
    uint32_t c = 2 * i;
    if (c > hp->n) break;
    if (c < hp->n && timer_less(hp->v[c + 1], hp->v[c])) c++;
    if (!timer_less(hp->v[c], tm)) break;
    heap_set(hp, i, hp->v[c]);
    i = c;
  }
  heap_set(hp, i, tm);
}

/* Double the heap's room (timer_reserve in greenhub.h): 0, or -1. */
int timer_grow(gh_heap *hp) {
  uint32_t cap = hp->cap ? hp->cap * 2 : 64;
  gh_timer **v = realloc(hp->v, cap * sizeof *v);
  if (!v) return -1;
  hp->v = v;
  hp->cap = cap;
  return 0;
}

/* Arm tm (re-arming moves it). Call timer_reserve first: with no room and
   no memory this aborts. */
void timer_start(gh_heap *hp, gh_timer *tm, int64_t deadline) {
  if (tm->idx) timer_cancel(hp, tm);
  if (timer_reserve(hp) < 0) abort();
  tm->deadline = deadline;
  tm->seq = hp->seq++;
  hp->n++;
  heap_set(hp, hp->n, tm);
  sift_up(hp, hp->n);
}

void timer_cancel(gh_heap *hp, gh_timer *tm) {
  uint32_t i = tm->idx;
  if (i == 0) return;
  tm->idx = 0;
  gh_timer *last = hp->v[hp->n--];
  if (i > hp->n) return; /* it was the last slot */
  heap_set(hp, i, last);
  if (i > 1 && timer_less(last, hp->v[i / 2])) sift_up(hp, i);
  else sift_down(hp, i);
}

gh_timer *timer_peek(const gh_heap *hp) {
  return hp->n ? hp->v[1] : NULL;
}

gh_timer *timer_pop(gh_heap *hp) {
  gh_timer *tm = timer_peek(hp);
  if (tm) timer_cancel(hp, tm);
  return tm;
}

/* 1 when every parent is <= its children and every idx is right. */
int timer_check(const gh_heap *hp) {
  for (uint32_t i = 1; i <= hp->n; i++) {
    if (hp->v[i]->idx != i) return 0;
    if (i > 1 && timer_less(hp->v[i], hp->v[i / 2])) return 0;
  }
  return 1;
}

void timer_free(gh_heap *hp) {
  for (uint32_t i = 1; i <= hp->n; i++) hp->v[i]->idx = 0;
  free(hp->v);
  hp->v = NULL;
  hp->n = hp->cap = 0;
}

/*
 * Self-test for the specs (core._timer_selftest): arm n timers with random
 * deadlines (many equal), cancel a random half in random order, pop the
 * rest; checks the heap invariant along the way and that pops come out in
 * (deadline, seq) order. Returns 1 on success.
 */
int timer_selftest(uint32_t n, uint32_t seed) {
  gh_heap hp = {0};
  gh_timer *t = calloc(n, sizeof *t);
  uint32_t *order = malloc(n * sizeof *order);
  if (!t || !order) { free(t); free(order); return 0; }
  uint64_t x = seed ? seed : 1;
#define RND() (x ^= x << 13, x ^= x >> 7, x ^= x << 17, x)
  int ok = 1;
  for (uint32_t i = 0; i < n; i++) {
    timer_start(&hp, &t[i], (int64_t)(RND() % (n / 4 + 1)));
    order[i] = i;
    if (i % 4096 == 0 && !timer_check(&hp)) ok = 0;
  }
  for (uint32_t i = n - 1; i > 0; i--) { /* shuffle */
    uint32_t j = (uint32_t)(RND() % (i + 1)), k = order[i];
    order[i] = order[j];
    order[j] = k;
  }
  for (uint32_t i = 0; i < n / 2; i++) {
    timer_cancel(&hp, &t[order[i]]);
    if (t[order[i]].idx != 0) ok = 0;
    if (i % 4096 == 0 && !timer_check(&hp)) ok = 0;
  }
  if (!timer_check(&hp) || hp.n != n - n / 2) ok = 0;
  gh_timer *prev = NULL, *cur;
  while ((cur = timer_pop(&hp))) {
    if (prev && (cur->deadline < prev->deadline ||
                 (cur->deadline == prev->deadline && cur->seq < prev->seq))) ok = 0;
    prev = cur;
  }
  timer_free(&hp);
  free(t);
  free(order);
  return ok;
#undef RND
}
