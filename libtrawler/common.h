/* common.h - error codes and small macros shared by every trawler module. */
#ifndef TR_COMMON_H
#define TR_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#define TR_OK 0
#define TR_ENOMEM (-1)	/* allocation failed */
#define TR_EINVAL (-2)	/* invalid argument or malformed input */
#define TR_EIO (-3)	/* I/O or network failure */
#define TR_ETOOBIG (-4) /* input exceeds a hard cap */
#define TR_ENOTFOUND (-5)
#define TR_ETIMEDOUT (-6)
#define TR_ESTATE (-7) /* called in the wrong state */
#define TR_EAGAIN (-8) /* not ready yet: call again later */

#define TR_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define TR_UNUSED(x) ((void)(x))

/* Milliseconds since the Unix epoch (CLOCK_REALTIME). */
int64_t tr_now_ms(void);
/* Monotonic milliseconds (CLOCK_MONOTONIC), for intervals. */
int64_t tr_mono_ms(void);
/* Monotonic microseconds. */
int64_t tr_mono_us(void);

#endif
