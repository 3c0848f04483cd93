/* offsets.h - per-partition "lowest unfinished offset" tracking for
 * at-least-once consumption when messages finish out of order.
 *
 * Offsets must be tracked in the order they are consumed (increasing per
 * partition). The committable offset of a partition is the lowest tracked
 * offset not yet done, or one past the highest done when none is pending.
 * Not thread-safe: use from the thread that consumes.
 */
#ifndef TR_OFFSETS_H
#define TR_OFFSETS_H

#include "common.h"

typedef struct tr_offsets tr_offsets;

/* Returns a new tracker or NULL on allocation failure. Free with
 * tr_offsets_free(). */
tr_offsets *tr_offsets_new(void);
void tr_offsets_free(tr_offsets *t);

/* Start tracking `offset` on `partition` (0..65535). Returns 0, TR_ENOMEM,
 * or TR_EINVAL when the offset is not above the last tracked one (a
 * redelivery after a seek: the caller resets the partition first). */
int tr_offsets_track(tr_offsets *t, int32_t partition, int64_t offset);

/* Mark a tracked offset done. Returns 0, or TR_ENOTFOUND when it is not
 * tracked (e.g. the partition was reset after a revoke). */
int tr_offsets_done(tr_offsets *t, int32_t partition, int64_t offset);

/* If the committable offset of `partition` advanced since the last call,
 * write it to *out and return true. */
bool tr_offsets_advanced(tr_offsets *t, int32_t partition, int64_t *out);

/* Describe the offsets of `partition` already done above its committable
 * offset as comma-separated ranges relative to it ("1-3,7"): what a commit
 * can carry as metadata so the next owner skips finished work. Writes at
 * most outlen bytes (NUL included); stops at a whole range. Returns the
 * committable offset, or -1 when nothing is tracked. */
int64_t tr_offsets_done_above(const tr_offsets *t, int32_t partition, char *out, size_t outlen);

/* Parse such a description back: `skip` gets absolute [from, to] pairs
 * (at most `max` pairs). Returns the number of pairs. */
size_t tr_offsets_parse_done(const char *desc, int64_t base, int64_t (*skip)[2], size_t max);

/* Forget everything about a partition (after a revoke or a seek). */
void tr_offsets_reset(tr_offsets *t, int32_t partition);

/* Highest partition number seen + 1 (for iterating). */
int32_t tr_offsets_partitions(const tr_offsets *t);

/* Number of tracked offsets not yet done, over all partitions. */
size_t tr_offsets_pending(const tr_offsets *t);

#endif
