/*
 * rcuscale's liburcu peers (tests/src/bin/rcuscale/liburcu.rs calls these through FFI; built
 * by tests/build.rs only with `--features liburcu`). The read-side fast paths are inlined as
 * liburcu users get them (_LGPL_SOURCE), and every loop is timed here, around the loop, so
 * no FFI call sits inside a measurement.
 *
 * Each loop mirrors its rcuscale row: the same 64-byte node, the same shape (W1: load the
 * pointer, read one field; W3: a reader and an updater for a fixed time), and BLACK_BOX does
 * what Rust's `std::hint::black_box` compiles to (the value spilled to the stack and its
 * address handed to an empty asm that clobbers memory), so both sides pay the same for
 * keeping the loop from being optimised away.
 */
#define _LGPL_SOURCE
#include <urcu/urcu-qsbr.h>
#include <urcu/urcu-memb.h>

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#define BLACK_BOX(x)                                                  \
	__extension__({                                               \
		__typeof__(x) bb_v = (x);                             \
		__asm__ volatile("" : : "r"(&bb_v) : "memory");       \
		bb_v;                                                 \
	})

/* rcuscale's Node: [u64; 8], plus the head call_rcu needs (the Rust side's Rcu<T> has one too). */
struct node {
	uint64_t data[8];
	struct rcu_head head;
};

/* W1 and W3 reads: a quiescent state every this many reads (rcuscale's QSBR rows too). */
#define READ_BATCH 1024

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static struct node *node_new(uint64_t v)
{
	struct node *n = malloc(sizeof(*n));

	if (!n)
		abort();
	for (int i = 0; i < 8; i++)
		n->data[i] = v;
	return n;
}

/* Whether the memb flavour's readers rely on membarrier (else they fence: urcu_memb_smp_mb_slave). */
int rcuscale_liburcu_memb_uses_membarrier(void)
{
	return urcu_memb_has_sys_membarrier;
}

/* W1 QSBR: ns per read (rcu_read_lock, which is empty in QSBR, rcu_dereference, one field,
 * rcu_read_unlock), a quiescent state every READ_BATCH reads, the thread online throughout. */
double rcuscale_liburcu_qsbr_read(uint64_t n)
{
	struct node *shared = node_new(1);
	uint64_t start, end;

	urcu_qsbr_register_thread(); /* online from here: outside the timed loop */
	start = now_ns();
	for (uint64_t i = 0; i < n; i++) {
		urcu_qsbr_read_lock();
		struct node *p = rcu_dereference(*BLACK_BOX(&shared));
		BLACK_BOX(p->data[0]);
		urcu_qsbr_read_unlock();
		if (i % READ_BATCH == READ_BATCH - 1)
			urcu_qsbr_quiescent_state();
	}
	end = now_ns();
	urcu_qsbr_unregister_thread();
	free(shared);
	return (double)(end - start) / (double)n;
}

/* W1 memb: ns per read section (rcu_read_lock, rcu_dereference, one field, rcu_read_unlock). */
double rcuscale_liburcu_memb_read(uint64_t n)
{
	struct node *shared = node_new(1);
	uint64_t start, end;

	urcu_memb_register_thread();
	start = now_ns();
	for (uint64_t i = 0; i < n; i++) {
		urcu_memb_read_lock();
		struct node *p = rcu_dereference(*BLACK_BOX(&shared));
		BLACK_BOX(p->data[0]);
		urcu_memb_read_unlock();
	}
	end = now_ns();
	urcu_memb_unregister_thread();
	free(shared);
	return (double)(end - start) / (double)n;
}

/* W4, for information: ns per urcu_qsbr_synchronize_rcu with `threads` registered threads, all
 * offline (the caller unregistered), `samples` calls; latencies written to `out`. */
struct offline_parker {
	pthread_barrier_t *ready;
	pthread_barrier_t *done;
};

static void *park_offline(void *arg)
{
	struct offline_parker *p = arg;

	urcu_qsbr_register_thread();
	urcu_qsbr_thread_offline();
	pthread_barrier_wait(p->ready);
	pthread_barrier_wait(p->done);
	urcu_qsbr_unregister_thread(); /* offline already: allowed */
	return NULL;
}

int rcuscale_liburcu_qsbr_sync_offline(size_t threads, size_t samples, double *out)
{
	pthread_barrier_t ready, done;
	pthread_t tid[16];
	struct offline_parker parker = { &ready, &done };

	if (threads > 16)
		return -1;
	pthread_barrier_init(&ready, NULL, (unsigned)threads + 1);
	pthread_barrier_init(&done, NULL, (unsigned)threads + 1);
	for (size_t i = 0; i < threads; i++)
		if (pthread_create(&tid[i], NULL, park_offline, &parker))
			abort();
	pthread_barrier_wait(&ready);
	urcu_qsbr_synchronize_rcu(); /* warm */
	for (size_t i = 0; i < samples; i++) {
		uint64_t t = now_ns();
		urcu_qsbr_synchronize_rcu();
		out[i] = (double)(now_ns() - t);
	}
	pthread_barrier_wait(&done);
	for (size_t i = 0; i < threads; i++)
		pthread_join(tid[i], NULL);
	pthread_barrier_destroy(&ready);
	pthread_barrier_destroy(&done);
	return 0;
}

/* W3 on urcu-qsbr: one reader, one updater, `secs` seconds (rcuscale's w3.rs `race`). */
struct w3_result {
	double reader_mops;
	double updater_mops;
	uint64_t allocated;
	uint64_t freed;
	double drain_ms;
};

struct w3_shared {
	struct node *ptr;
	int stop; /* read and written with relaxed atomics: a flag; the threads are joined */
	pthread_barrier_t start;
	uint64_t ops[2];
	uint64_t ns[2];
};

static uint64_t freed_nodes; /* call_rcu callbacks run on liburcu's worker: atomic adds */

static void free_node(struct rcu_head *head)
{
	__atomic_fetch_add(&freed_nodes, 1, __ATOMIC_RELAXED);
	free(caa_container_of(head, struct node, head));
}

static void *w3_reader(void *arg)
{
	struct w3_shared *s = arg;
	uint64_t reads = 0, start;

	urcu_qsbr_register_thread(); /* online */
	pthread_barrier_wait(&s->start);
	start = now_ns();
	while (!__atomic_load_n(&s->stop, __ATOMIC_RELAXED)) {
		for (int i = 0; i < READ_BATCH; i++) {
			urcu_qsbr_read_lock();
			struct node *p = rcu_dereference(*BLACK_BOX(&s->ptr));
			BLACK_BOX(p->data[0]);
			urcu_qsbr_read_unlock();
		}
		urcu_qsbr_quiescent_state();
		reads += READ_BATCH;
	}
	s->ns[0] = now_ns() - start;
	s->ops[0] = reads;
	urcu_qsbr_unregister_thread();
	return NULL;
}

/* call_rcu wants an online caller in QSBR (rcu-api.md): the updater stays online and
 * announces a quiescent state after each update, which costs a load and a compare unless a
 * grace period has begun since the last one (then two fences and a store). */
static void *w3_updater(void *arg)
{
	struct w3_shared *s = arg;
	uint64_t updates = 0, start;

	urcu_qsbr_register_thread();
	pthread_barrier_wait(&s->start);
	start = now_ns();
	while (!__atomic_load_n(&s->stop, __ATOMIC_RELAXED)) {
		struct node *old = rcu_xchg_pointer(&s->ptr, node_new(updates));
		urcu_qsbr_call_rcu(&old->head, free_node);
		urcu_qsbr_quiescent_state();
		updates++;
	}
	s->ns[1] = now_ns() - start;
	s->ops[1] = updates;
	urcu_qsbr_unregister_thread();
	return NULL;
}

int rcuscale_liburcu_qsbr_w3(double secs, struct w3_result *out)
{
	struct w3_shared s = { .ptr = node_new(0), .stop = 0 };
	pthread_t reader, updater;
	struct timespec d;
	uint64_t drain;

	pthread_barrier_init(&s.start, NULL, 3);
	if (pthread_create(&reader, NULL, w3_reader, &s) || pthread_create(&updater, NULL, w3_updater, &s))
		return -1;
	pthread_barrier_wait(&s.start);
	d.tv_sec = (time_t)secs;
	d.tv_nsec = (long)((secs - (double)d.tv_sec) * 1e9);
	nanosleep(&d, NULL);
	__atomic_store_n(&s.stop, 1, __ATOMIC_RELAXED);
	pthread_join(reader, NULL);
	pthread_join(updater, NULL);
	pthread_barrier_destroy(&s.start);

	drain = now_ns();
	free_node(&s.ptr->head); /* the current value: no reader is left */
	urcu_qsbr_barrier(); /* every call_rcu callback queued so far has run */
	out->drain_ms = (double)(now_ns() - drain) / 1e6;
	out->reader_mops = (double)s.ops[0] / ((double)s.ns[0] / 1e9) / 1e6;
	out->updater_mops = (double)s.ops[1] / ((double)s.ns[1] / 1e9) / 1e6;
	out->allocated = s.ops[1] + 1;
	out->freed = __atomic_load_n(&freed_nodes, __ATOMIC_RELAXED);
	return 0;
}
