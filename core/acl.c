/* acl.c - ACL files compiled into level tries: a check is one lookup per level.
 *
 * mosquitto keeps each user's rules in a list and, for every publish and every
 * delivery, walks the list and (for patterns) mallocs and builds the
 * substituted filter string before matching it. With 10,000 rules that is a
 * scan of 10,000 strings per message. Here the file is compiled once into
 * tries keyed by level, shaped like the subscription trie:
 *
 *	N_USERS --"alice"--> a0 --"devices"--> a1 --"x"--> a2   (alice: devices/x)
 *	                                         \--(plus)--> a3  (alice: devices/+)
 *	N_ANON  --"public"--> p1 --(hash)--> p2                  (anonymous: public/#)
 *	N_PATTERNS --"home"--> h1 --{%u}--> h2 --(hash)--> h3    (pattern home/%u/#)
 *
 * Every literal edge of every trie lives in one open-addressing table keyed
 * by (parent node, level bytes), so a node with 10,000 literal children and
 * 10,000 nodes with one child each cost the same probe; users are literal
 * children of the pseudo-node N_USERS, so resolving a user is the same probe.
 * '+' and '#' children are direct indices. Pattern levels holding %u/%c are
 * "templates": a list of pieces (text, user name, client id) compared in
 * place against the topic level, never substituted into a buffer.
 *
 * A node keeps the access bits (read, write, deny) of the rules ending there
 * and, in `sub`, the union over its subtree, so a walk skips subtrees that
 * cannot answer the question. A check walks the client's section and the
 * pattern trie once, OR-ing the bits of every matching rule: deny wins,
 * otherwise the needed bit grants. Without deny rules in reach the walk stops
 * at the first grant. Measured by perf/bench_acl.c (perf/RESULTS.md, "ACL
 * checks"): 70 ns per check against one user's 10,000 rules, where scanning
 * them takes 175 us; 70 ns with 100 patterns, where substituting and
 * matching each takes 4 us.
 *
 * SUBSCRIBE walks the same tries with the filter instead of a topic: a
 * filter level '+' or '#' enumerates children (sibling lists), pruned by
 * `sub`, to decide whether some rule intersects or one rule covers it.
 *
 * Invariants: nodes, edges, templates and pieces are created during parsing
 * and never change afterwards (no locks for readers); a child's index is
 * greater than its parent's (so `sub` is one backward pass); index 0 of every
 * array means "none", and node 0 is the empty section.
 *
 * Left to others: reading the file at reload time and swapping the pointer,
 * the broker's own $SYS write rules, and what a refusal means on the wire.
 */
#include "core/acl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/hash.h"

#include "core/topic.h"

#define ACC_READ 1u
#define ACC_WRITE 2u
#define ACC_DENY 4u

#define VAR_U 1u
#define VAR_C 2u

enum { N_EMPTY, N_USERS, N_ANON, N_PATTERNS, N_FIXED };

struct node {
	uint32_t edges;		/* first literal child edge (sibling list), 0 = none */
	uint32_t tmpls;		/* first template child (pattern trie only), 0 = none */
	uint32_t plus;		/* '+' child node, 0 = none */
	uint32_t hash;		/* '#' child node (always a leaf), 0 = none */
	uint8_t access;		/* ACC_* of the rules whose filter ends here */
	uint8_t sub;		/* ACC_* of this node and all its descendants */
};

struct edge {
	uint32_t parent;
	uint32_t child;
	uint32_t next;		/* next sibling edge of the parent */
	uint32_t off, len;	/* the level in acl->text */
};

/* One piece of a template level: literal text, or a variable. */
struct piece {
	uint32_t off, len;	/* text (var == 0) */
	uint8_t var;		/* 0, VAR_U or VAR_C */
};

struct tmpl {
	uint32_t child;
	uint32_t next;		/* next template child of the same parent */
	uint32_t piece, npieces;
};

struct slot {
	uint32_t tag;		/* high half of the key hash */
	uint32_t edge;		/* 0 = empty */
};

struct smq_acl {
	struct node *nodes;
	struct edge *edges;
	struct tmpl *tmpls;
	struct piece *pieces;
	char *text;
	struct slot *slots;
	uint32_t nnodes, nedges, ntmpls, npieces, ntext;
	uint32_t cnodes, cedges, ctmpls, cpieces, ctext;
	uint32_t mask;		/* slots - 1, a power of two minus one; load <= 1/2 */
	uint32_t *parent;	/* parse time only: parent of each node */
	uint32_t cparent;
	size_t rules;
	uint8_t deny_vars;	/* bit 1 << (VAR_* set) for each deny pattern's variables */
	bool has_tmpls;		/* some pattern level is a template */
};

/* ---- hashing and lookup ------------------------------------------------ */

/* The table is built from the administrator's rules only and never changes,
 * so a client choosing topics cannot lengthen its probe sequences: no need
 * for a per-table secret seed. */
static uint64_t key_hash(uint32_t parent, const char *s, uint32_t len)
{
	uint64_t h = (uint64_t)parent * 0x9e3779b97f4a7c15ull ^ len;
	uint64_t w;

	for (; len >= 8; s += 8, len -= 8) {
		memcpy(&w, s, 8);
		h = (h ^ w) * 0x100000001b3ull;
		h ^= h >> 29;
	}
	for (w = 0; len; len--)
		w = (w << 8) | (uint8_t)s[len - 1];
	return smq_mix64(h ^ w);
}

/* The edge from @parent labelled @s, or 0. */
static uint32_t find_edge(const struct smq_acl *a, uint32_t parent, const char *s, uint32_t len)
{
	uint64_t h = key_hash(parent, s, len);
	uint32_t tag = (uint32_t)(h >> 32);
	const struct slot *sl;
	const struct edge *e;

	for (uint32_t i = (uint32_t)h & a->mask;; i = (i + 1) & a->mask) {
		sl = &a->slots[i];
		if (!sl->edge)
			return 0;
		if (sl->tag != tag)
			continue;
		e = &a->edges[sl->edge];
		if (e->parent == parent && e->len == len && !memcmp(a->text + e->off, s, len))
			return sl->edge;
	}
}

static const struct smq_acl_user *handle(const struct smq_acl *a, uint32_t n)
{
	return (const struct smq_acl_user *)(const void *)&a->nodes[n];
}

static uint32_t node_of(const struct smq_acl *a, const struct smq_acl_user *u)
{
	return (uint32_t)((const struct node *)(const void *)u - a->nodes);
}

/* ---- building ------------------------------------------------------------ */

static int grow(void *arrp, uint32_t *cap, uint32_t need, size_t size)
{
	void **arr = arrp;
	uint32_t c = *cap ? *cap : 16;
	void *v;

	if (need <= *cap)
		return 0;
	while (c < need) {
		if (c > UINT32_MAX / 2)
			return -ENOMEM;
		c *= 2;
	}
	v = realloc(*arr, (size_t)c * size);
	if (!v)
		return -ENOMEM;
	*arr = v;
	*cap = c;
	return 0;
}

static int new_node(struct smq_acl *a, uint32_t parent, uint32_t *out)
{
	if (grow(&a->nodes, &a->cnodes, a->nnodes + 1, sizeof(*a->nodes)) ||
	    grow(&a->parent, &a->cparent, a->nnodes + 1, sizeof(*a->parent)))
		return -ENOMEM;
	memset(&a->nodes[a->nnodes], 0, sizeof(*a->nodes));
	a->parent[a->nnodes] = parent;
	*out = a->nnodes++;
	return 0;
}

static int add_text(struct smq_acl *a, const char *s, uint32_t len, uint32_t *off)
{
	if (grow(&a->text, &a->ctext, a->ntext + len + 1, 1))
		return -ENOMEM;
	memcpy(a->text + a->ntext, s, len);
	*off = a->ntext;
	a->ntext += len;
	return 0;
}

static void slot_put(struct smq_acl *a, uint32_t ei)
{
	const struct edge *e = &a->edges[ei];
	uint64_t h = key_hash(e->parent, a->text + e->off, e->len);
	uint32_t i = (uint32_t)h & a->mask;

	while (a->slots[i].edge)
		i = (i + 1) & a->mask;
	a->slots[i] = (struct slot){ (uint32_t)(h >> 32), ei };
}

static int rehash(struct smq_acl *a, uint32_t nslots)
{
	struct slot *s = calloc(nslots, sizeof(*s));

	if (!s)
		return -ENOMEM;
	free(a->slots);
	a->slots = s;
	a->mask = nslots - 1;
	for (uint32_t i = 1; i < a->nedges; i++)
		slot_put(a, i);
	return 0;
}

/* The literal child of @parent labelled @s, created if missing. */
static int child_lit(struct smq_acl *a, uint32_t parent, const char *s, uint32_t len,
		     uint32_t *out)
{
	uint32_t ei = find_edge(a, parent, s, len), child, off;
	struct edge *e;

	if (ei) {
		*out = a->edges[ei].child;
		return 0;
	}
	if ((uint64_t)(a->nedges + 1) * 2 > (uint64_t)a->mask + 1 &&
	    (a->mask >= UINT32_MAX / 2 || rehash(a, (a->mask + 1) * 2)))
		return -ENOMEM;
	if (grow(&a->edges, &a->cedges, a->nedges + 1, sizeof(*a->edges)) ||
	    add_text(a, s, len, &off) || new_node(a, parent, &child))
		return -ENOMEM;
	ei = a->nedges++;
	e = &a->edges[ei];
	*e = (struct edge){ parent, child, a->nodes[parent].edges, off, len };
	a->nodes[parent].edges = ei;
	slot_put(a, ei);
	*out = child;
	return 0;
}

static int child_wild(struct smq_acl *a, uint32_t parent, bool plus, uint32_t *out)
{
	uint32_t *slot = plus ? &a->nodes[parent].plus : &a->nodes[parent].hash;
	uint32_t c = *slot;

	if (!c) {
		if (new_node(a, parent, &c))
			return -ENOMEM;
		/* new_node may have moved the array */
		*(plus ? &a->nodes[parent].plus : &a->nodes[parent].hash) = c;
	}
	*out = c;
	return 0;
}

static bool has_var(const char *s, uint32_t len)
{
	for (uint32_t i = 0; i + 1 < len; i++)
		if (s[i] == '%' && (s[i + 1] == 'u' || s[i + 1] == 'c'))
			return true;
	return false;
}

static int add_piece(struct smq_acl *a, uint8_t var, const char *s, uint32_t len)
{
	struct piece *pc;

	if (grow(&a->pieces, &a->cpieces, a->npieces + 1, sizeof(*a->pieces)))
		return -ENOMEM;
	pc = &a->pieces[a->npieces];
	*pc = (struct piece){ 0, len, var };
	if (!var && add_text(a, s, len, &pc->off))
		return -ENOMEM;
	a->npieces++;
	return 0;
}

/* Split level @s into pieces at a->pieces[*first...]; returns their count. */
static int split_tmpl(struct smq_acl *a, const char *s, uint32_t len, uint32_t *first,
		      uint8_t *vars)
{
	uint32_t lit = 0;

	*first = a->npieces;
	for (uint32_t i = 0; i < len; i++) {
		if (s[i] != '%' || i + 1 >= len || (s[i + 1] != 'u' && s[i + 1] != 'c'))
			continue;
		if (i > lit && add_piece(a, 0, s + lit, i - lit))
			return -ENOMEM;
		if (add_piece(a, s[i + 1] == 'u' ? VAR_U : VAR_C, NULL, 0))
			return -ENOMEM;
		*vars |= s[i + 1] == 'u' ? VAR_U : VAR_C;
		lit = i + 2;
		i++;
	}
	if (len > lit && add_piece(a, 0, s + lit, len - lit))
		return -ENOMEM;
	return (int)(a->npieces - *first);
}

static bool same_pieces(const struct smq_acl *a, uint32_t x, uint32_t y, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		const struct piece *p = &a->pieces[x + i], *q = &a->pieces[y + i];

		if (p->var != q->var || p->len != q->len ||
		    memcmp(a->text + p->off, a->text + q->off, p->len))
			return false;
	}
	return true;
}

/* The template child of @parent for level @s (holding %u or %c). */
static int child_tmpl(struct smq_acl *a, uint32_t parent, const char *s, uint32_t len,
		      uint8_t *vars, uint32_t *out)
{
	uint32_t text_mark = a->ntext, first, child, ti;
	int n = split_tmpl(a, s, len, &first, vars);

	if (n < 0)
		return n;
	for (ti = a->nodes[parent].tmpls; ti; ti = a->tmpls[ti].next) {
		if (a->tmpls[ti].npieces == (uint32_t)n && same_pieces(a, a->tmpls[ti].piece, first, n)) {
			a->npieces = first;	/* a duplicate: drop the new copy */
			a->ntext = text_mark;
			*out = a->tmpls[ti].child;
			return 0;
		}
	}
	if (grow(&a->tmpls, &a->ctmpls, a->ntmpls + 1, sizeof(*a->tmpls)) ||
	    new_node(a, parent, &child))
		return -ENOMEM;
	ti = a->ntmpls++;
	a->tmpls[ti] = (struct tmpl){ child, a->nodes[parent].tmpls, first, (uint32_t)n };
	a->nodes[parent].tmpls = ti;
	a->has_tmpls = true;
	*out = child;
	return 0;
}

/* Add the rule @f (a valid filter) with @acc under @root. */
static int add_rule(struct smq_acl *a, uint32_t root, const char *f, uint32_t len, uint8_t acc,
		    bool pattern)
{
	const char *p = f, *end = f + len, *slash;
	uint32_t n = root, llen;
	uint8_t vars = 0;
	int ret;

	for (;;) {
		slash = memchr(p, '/', (size_t)(end - p));
		llen = (uint32_t)((slash ? slash : end) - p);
		if (llen == 1 && (*p == '+' || *p == '#'))
			ret = child_wild(a, n, *p == '+', &n);
		else if (pattern && has_var(p, llen))
			ret = child_tmpl(a, n, p, llen, &vars, &n);
		else
			ret = child_lit(a, n, p, llen, &n);
		if (ret)
			return ret;
		if (!slash)
			break;
		p = slash + 1;
	}
	a->nodes[n].access |= acc;
	if ((acc & ACC_DENY) && vars)
		a->deny_vars |= (uint8_t)(1u << vars);
	a->rules++;
	return 0;
}

/* Fill `sub`: children come after their parents, so one backward pass. */
static void finish(struct smq_acl *a)
{
	for (uint32_t i = a->nnodes; i-- > 0;) {
		a->nodes[i].sub |= a->nodes[i].access;
		if (a->parent[i] != UINT32_MAX && a->parent[i] != N_USERS)
			a->nodes[a->parent[i]].sub |= a->nodes[i].sub;
	}
	free(a->parent);
	a->parent = NULL;
}

static struct smq_acl *acl_new(void)
{
	struct smq_acl *a = calloc(1, sizeof(*a));
	uint32_t n;

	if (!a)
		return NULL;
	a->nnodes = 0;
	a->nedges = a->ntmpls = 1;	/* index 0 means none */
	if (grow(&a->edges, &a->cedges, 1, sizeof(*a->edges)) ||
	    grow(&a->tmpls, &a->ctmpls, 1, sizeof(*a->tmpls)) || rehash(a, 64))
		goto out_free;
	for (int i = 0; i < N_FIXED; i++)
		if (new_node(a, UINT32_MAX, &n))
			goto out_free;
	return a;
out_free:
	smq_acl_free(a);
	return NULL;
}

void smq_acl_free(struct smq_acl *a)
{
	if (!a)
		return;
	free(a->nodes);
	free(a->edges);
	free(a->tmpls);
	free(a->pieces);
	free(a->text);
	free(a->slots);
	free(a->parent);
	free(a);
}

size_t smq_acl_rule_count(const struct smq_acl *a)
{
	return a->rules;
}

/* ---- parsing --------------------------------------------------------------- */

struct parser {
	struct smq_acl *a;
	const char *name;
	unsigned line;
	uint32_t section;	/* where topic lines go */
	char *err;
	size_t errlen;
};

static int fail(struct parser *ps, int ret, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(struct parser *ps, int ret, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!ps->err || !ps->errlen)
		return ret;
	n = snprintf(ps->err, ps->errlen, "%s:%u: ", ps->name, ps->line);
	if (n < 0 || (size_t)n >= ps->errlen)
		return ret;
	va_start(ap, fmt);
	vsnprintf(ps->err + n, ps->errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return ret;
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

struct span {
	const char *p;
	size_t len;
};

static struct span trim(const char *p, size_t len)
{
	while (len && is_blank(*p))
		p++, len--;
	while (len && is_blank(p[len - 1]))
		len--;
	return (struct span){ p, len };
}

/* Split @s (trimmed) into its first word and the trimmed rest. */
static struct span word(struct span *s)
{
	size_t n = 0;
	struct span w;

	while (n < s->len && !is_blank(s->p[n]))
		n++;
	w = (struct span){ s->p, n };
	*s = trim(s->p + n, s->len - n);
	return w;
}

static bool is(struct span s, const char *lit)
{
	return s.len == strlen(lit) && !memcmp(s.p, lit, s.len);
}

static int parse_access(struct span w, uint8_t *acc)
{
	if (is(w, "read"))
		*acc = ACC_READ;
	else if (is(w, "write"))
		*acc = ACC_WRITE;
	else if (is(w, "readwrite"))
		*acc = ACC_READ | ACC_WRITE;
	else if (is(w, "deny"))
		*acc = ACC_DENY;
	else
		return -EINVAL;
	return 0;
}

static int parse_rule(struct parser *ps, struct span rest, bool pattern)
{
	struct span filter = rest, w = word(&rest);
	uint8_t acc = ACC_READ | ACC_WRITE;
	size_t levels = 1;

	if (!filter.len)
		return fail(ps, -EINVAL, "missing topic filter");
	if (rest.len) {		/* "topic ACCESS FILTER" */
		if (parse_access(w, &acc))
			return fail(ps, -EINVAL, "bad access word '%.*s' (expected read, write, "
				    "readwrite or deny)", (int)w.len, w.p);
		filter = rest;
	}
	if (filter.len > SMQ_TOPIC_MAX ||
	    !smq_topic_filter_valid((struct smq_str){ (const uint8_t *)filter.p,
						       (uint32_t)filter.len }))
		return fail(ps, -EINVAL, "invalid topic filter '%.*s'",
			    (int)(filter.len > 200 ? 200 : filter.len), filter.p);
	for (size_t i = 0; i < filter.len; i++)
		levels += filter.p[i] == '/';
	if (levels > SMQ_ACL_MAX_LEVELS)
		return fail(ps, -EINVAL, "topic filter has more than %u levels",
			    SMQ_ACL_MAX_LEVELS);
	if (add_rule(ps->a, pattern ? N_PATTERNS : ps->section, filter.p, (uint32_t)filter.len,
		     acc, pattern))
		return fail(ps, -ENOMEM, "out of memory");
	return 0;
}

static int parse_line(struct parser *ps, struct span s)
{
	struct span kw = word(&s);

	if (is(kw, "topic") || is(kw, "pattern"))
		return parse_rule(ps, s, is(kw, "pattern"));
	if (!is(kw, "user"))
		return fail(ps, -EINVAL, "unknown keyword '%.*s' (expected user, topic or pattern)",
			    (int)(kw.len > 100 ? 100 : kw.len), kw.p);
	if (!s.len)
		return fail(ps, -EINVAL, "empty user name");
	if (s.len > UINT16_MAX)
		return fail(ps, -EINVAL, "user name longer than %u bytes", UINT16_MAX);
	if (child_lit(ps->a, N_USERS, s.p, (uint32_t)s.len, &ps->section))
		return fail(ps, -ENOMEM, "out of memory");
	return 0;
}

int smq_acl_parse(const char *text, size_t len, const char *name, struct smq_acl **out,
		  char *err, size_t errlen)
{
	struct parser ps = { NULL, name, 0, N_ANON, err, errlen };
	const char *p = text, *end = text + len, *nl;
	struct span s;
	int ret;

	if (len >= UINT32_MAX / 4)
		return fail(&ps, -EFBIG, "file too large");
	ps.a = acl_new();
	if (!ps.a)
		return fail(&ps, -ENOMEM, "out of memory");
	while (p < end) {
		ps.line++;
		nl = memchr(p, '\n', (size_t)(end - p));
		s = trim(p, (size_t)((nl ? nl : end) - p));
		p = nl ? nl + 1 : end;
		if (!s.len || s.p[0] == '#')
			continue;
		ret = parse_line(&ps, s);
		if (ret) {
			smq_acl_free(ps.a);
			return ret;
		}
	}
	finish(ps.a);
	*out = ps.a;
	return 0;
}

int smq_acl_load(const char *path, struct smq_acl **out, char *err, size_t errlen)
{
	size_t n = 0, cap = 4096;
	char *buf = NULL, *v;
	ssize_t r;
	int fd, ret;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		goto out_errno;
	for (;;) {
		if (!buf || n == cap) {
			v = realloc(buf, buf ? (cap *= 2) : cap);
			if (!v) {
				errno = ENOMEM;
				goto out_close;
			}
			buf = v;
		}
		r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			goto out_close;
		if (!r)
			break;
		n += (size_t)r;
	}
	close(fd);
	ret = smq_acl_parse(buf, n, path, out, err, errlen);
	free(buf);
	return ret;
out_close:
	ret = errno;
	free(buf);
	close(fd);
	errno = ret;
out_errno:
	ret = -errno;
	if (err && errlen)
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
	return ret;
}

/* ---- checking ------------------------------------------------------------- */

/* One check's context. @ok_u / @ok_c: the user name / client id may be
 * substituted (present, non-empty, no '/', '+' or '#'). */
struct ctx {
	const struct smq_acl *a;
	const struct smq_acl_who *who;
	const char *end;	/* end of the topic or filter */
	unsigned want;		/* bits a walk looks for */
	unsigned stop;		/* a topic walk may stop once it has one of these */
	bool ok_u, ok_c;
};

static bool value_ok(const char *v, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (v[i] == '/' || v[i] == '+' || v[i] == '#')
			return false;
	return len > 0;
}

/* Sets up @c; false if @who must be refused everything (fail closed). */
static bool ctx_init(struct ctx *c, const struct smq_acl *a, const struct smq_acl_who *who,
		     const char *s, size_t len)
{
	*c = (struct ctx){ a, who, s + len, 0, 0, false, false };
	if (!a->has_tmpls)
		return true;
	c->ok_u = who->has_user && value_ok(who->user, who->user_len);
	c->ok_c = value_ok(who->client_id, who->id_len);
	/* a deny pattern with %u does not apply without user name; one that
	 * applies but cannot be substituted refuses everything */
	if ((a->deny_vars & (1u << VAR_U)) && who->has_user && !c->ok_u)
		return false;
	if ((a->deny_vars & (1u << VAR_C)) && !c->ok_c)
		return false;
	if ((a->deny_vars & (1u << (VAR_U | VAR_C))) && who->has_user && !(c->ok_u && c->ok_c))
		return false;
	return true;
}

static bool var_value(const struct ctx *c, const struct piece *pc, const char **v, size_t *len)
{
	if (!pc->var) {
		*v = c->a->text + pc->off;
		*len = pc->len;
		return true;
	}
	if (pc->var == VAR_U) {
		*v = c->who->user;
		*len = c->who->user_len;
		return c->ok_u;
	}
	*v = c->who->client_id;
	*len = c->who->id_len;
	return c->ok_c;
}

/* Does template @tm, substituted for this client, equal level @s? */
static bool tmpl_eq(const struct ctx *c, const struct tmpl *tm, const char *s, size_t len)
{
	size_t pos = 0, vlen;
	const char *v;

	for (uint32_t i = 0; i < tm->npieces; i++) {
		if (!var_value(c, &c->a->pieces[tm->piece + i], &v, &vlen))
			return false;
		if (vlen > len - pos || memcmp(s + pos, v, vlen))
			return false;
		pos += vlen;
	}
	return pos == len;
}

/* Can template @tm be substituted for this client, and (in the first level,
 * @first) does the result not start with '$'? Used where the filter side is
 * a wildcard: '+' and '#' match any such level. */
static bool tmpl_any(const struct ctx *c, const struct tmpl *tm, bool first)
{
	const char *v;
	size_t vlen;

	for (uint32_t i = 0; i < tm->npieces; i++)
		if (!var_value(c, &c->a->pieces[tm->piece + i], &v, &vlen))
			return false;
	var_value(c, &c->a->pieces[tm->piece], &v, &vlen);
	return !first || v[0] != '$';
}

static unsigned leaf(const struct smq_acl *a, uint32_t n)
{
	const struct node *nd = &a->nodes[n];

	return nd->access | (nd->hash ? a->nodes[nd->hash].access : 0u);
}

/* A level of the topic or filter at @p: [p, p + len), @next after the '/'
 * or NULL for the last level. */
struct level {
	const char *p;
	size_t len;
	const char *next;
};

static struct level level_at(const struct ctx *c, const char *p)
{
	const char *slash = memchr(p, '/', (size_t)(c->end - p));

	return (struct level){ p, (size_t)((slash ? slash : c->end) - p), slash ? slash + 1 : NULL };
}

static unsigned walk(const struct ctx *c, uint32_t n, const char *t, bool first);

static unsigned walk_next(const struct ctx *c, uint32_t child, const char *next)
{
	if (!(c->a->nodes[child].sub & c->want))
		return 0;
	return next ? walk(c, child, next, false) : leaf(c->a, child);
}

/* OR of the access bits of the rules under @n matching the topic from @t
 * on. [MQTT-4.7.2-1]: in the first level, '+' and '#' skip '$' topics. */
static unsigned walk(const struct ctx *c, uint32_t n, const char *t, bool first)
{
	const struct smq_acl *a = c->a;
	const struct node *nd = &a->nodes[n];
	struct level l = level_at(c, t);
	bool dollar = first && l.len && *l.p == '$';
	unsigned acc = 0;
	uint32_t e;

	if (nd->hash && !dollar)
		acc |= a->nodes[nd->hash].access;
	if (nd->edges && !(acc & c->stop)) {
		e = find_edge(a, n, l.p, (uint32_t)l.len);
		if (e)
			acc |= walk_next(c, a->edges[e].child, l.next);
	}
	if (nd->plus && !dollar && !(acc & c->stop))
		acc |= walk_next(c, nd->plus, l.next);
	for (uint32_t ti = nd->tmpls; ti && !(acc & c->stop); ti = a->tmpls[ti].next)
		if (tmpl_eq(c, &a->tmpls[ti], l.p, l.len))
			acc |= walk_next(c, a->tmpls[ti].child, l.next);
	return acc;
}

static bool check(const struct smq_acl *a, const struct smq_acl_user *u,
		  const struct smq_acl_who *who, const char *topic, size_t len, unsigned need)
{
	uint32_t sec = node_of(a, u);
	unsigned reach = a->nodes[sec].sub | a->nodes[N_PATTERNS].sub, acc = 0;
	struct ctx c;

	if (!len || len > SMQ_TOPIC_MAX || !ctx_init(&c, a, who, topic, len))
		return false;
	if (!(reach & need))
		return false;
	c.want = need | ACC_DENY;
	c.stop = (reach & ACC_DENY) ? ACC_DENY : need;
	if (a->nodes[sec].sub & c.want)
		acc = walk(&c, sec, topic, true);
	if (!(acc & c.stop) && (a->nodes[N_PATTERNS].sub & c.want))
		acc |= walk(&c, N_PATTERNS, topic, true);
	return !(acc & ACC_DENY) && (acc & need);
}

bool smq_acl_can_publish(const struct smq_acl *a, const struct smq_acl_user *u,
			 const struct smq_acl_who *who, const char *topic, size_t len)
{
	return check(a, u, who, topic, len, ACC_WRITE);
}

bool smq_acl_can_read(const struct smq_acl *a, const struct smq_acl_user *u,
		      const struct smq_acl_who *who, const char *topic, size_t len)
{
	return check(a, u, who, topic, len, ACC_READ);
}

const struct smq_acl_user *smq_acl_user(const struct smq_acl *a, const struct smq_acl_who *who)
{
	uint32_t e;

	if (!who->has_user)
		return handle(a, N_ANON);
	if (who->user_len > UINT16_MAX)
		return handle(a, N_EMPTY);
	e = find_edge(a, N_USERS, who->user, (uint32_t)who->user_len);
	return handle(a, e ? a->edges[e].child : N_EMPTY);
}

/* ---- subscribe: filter against rules ---------------------------------- */

static bool edge_dollar(const struct smq_acl *a, const struct edge *e)
{
	return e->len && a->text[e->off] == '$';
}

/* Is there a rule with c->want under @n matching some continuation (zero or
 * more levels; at least one when @first) of the path to @n? */
static bool below(const struct ctx *c, uint32_t n, bool first)
{
	const struct smq_acl *a = c->a;
	const struct node *nd = &a->nodes[n];

	if (!(nd->sub & c->want))
		return false;
	if ((!first && (nd->access & c->want)) ||
	    (nd->hash && (a->nodes[nd->hash].access & c->want)))
		return true;
	if (nd->plus && below(c, nd->plus, false))
		return true;
	for (uint32_t ei = nd->edges; ei; ei = a->edges[ei].next)
		if (!(first && edge_dollar(a, &a->edges[ei])) && below(c, a->edges[ei].child, false))
			return true;
	for (uint32_t ti = nd->tmpls; ti; ti = a->tmpls[ti].next)
		if (tmpl_any(c, &a->tmpls[ti], first) && below(c, a->tmpls[ti].child, false))
			return true;
	return false;
}

static bool isect(const struct ctx *c, uint32_t n, const char *f, bool first);

static bool isect_next(const struct ctx *c, uint32_t child, const char *next)
{
	return next ? isect(c, child, next, false) : (leaf(c->a, child) & c->want);
}

/* Does a rule with c->want under @n match some topic that the filter from
 * @f on matches? */
static bool isect(const struct ctx *c, uint32_t n, const char *f, bool first)
{
	const struct smq_acl *a = c->a;
	const struct node *nd = &a->nodes[n];
	struct level l = level_at(c, f);
	bool plus = l.len == 1 && *l.p == '+', hash = l.len == 1 && *l.p == '#';
	bool dollar = first && !plus && !hash && l.len && *l.p == '$';
	uint32_t e;

	if (!(nd->sub & c->want))
		return false;
	if (hash)
		return below(c, n, first);
	if (nd->hash && !dollar && (a->nodes[nd->hash].access & c->want))
		return true;
	if (nd->plus && !dollar && isect_next(c, nd->plus, l.next))
		return true;
	if (plus) {
		for (uint32_t ei = nd->edges; ei; ei = a->edges[ei].next)
			if (!(first && edge_dollar(a, &a->edges[ei])) &&
			    isect_next(c, a->edges[ei].child, l.next))
				return true;
	} else if (nd->edges && (e = find_edge(a, n, l.p, (uint32_t)l.len))) {
		if (isect_next(c, a->edges[e].child, l.next))
			return true;
	}
	for (uint32_t ti = nd->tmpls; ti; ti = a->tmpls[ti].next) {
		const struct tmpl *tm = &a->tmpls[ti];

		if ((plus ? tmpl_any(c, tm, first) : tmpl_eq(c, tm, l.p, l.len)) &&
		    isect_next(c, tm->child, l.next))
			return true;
	}
	return false;
}

static bool covers(const struct ctx *c, uint32_t n, const char *f, bool first);

static bool covers_next(const struct ctx *c, uint32_t child, const char *next)
{
	return next ? covers(c, child, next, false) : (leaf(c->a, child) & c->want);
}

/* Is there one rule with c->want under @n matching every topic that the
 * filter from @f on matches? */
static bool covers(const struct ctx *c, uint32_t n, const char *f, bool first)
{
	const struct smq_acl *a = c->a;
	const struct node *nd = &a->nodes[n];
	struct level l = level_at(c, f);
	bool plus = l.len == 1 && *l.p == '+', hash = l.len == 1 && *l.p == '#';
	bool dollar = first && !plus && !hash && l.len && *l.p == '$';
	uint32_t e;

	if (!(nd->sub & c->want))
		return false;
	/* a rule "P/#" covers every filter below P, "P/#" itself included */
	if (nd->hash && !dollar && (a->nodes[nd->hash].access & c->want))
		return true;
	if (hash) {
		/* "#" matches the path to @n itself, which only a '#' rule here
		 * covers; but the root path is no topic, so "+/#" covers "#" */
		uint32_t ph = nd->plus ? a->nodes[nd->plus].hash : 0;

		return first && ph && (a->nodes[ph].access & c->want);
	}
	if (nd->plus && !dollar && covers_next(c, nd->plus, l.next))
		return true;
	if (plus)
		return false;	/* only '+' or '#' cover a '+' level */
	if (nd->edges && (e = find_edge(a, n, l.p, (uint32_t)l.len)) &&
	    covers_next(c, a->edges[e].child, l.next))
		return true;
	for (uint32_t ti = nd->tmpls; ti; ti = a->tmpls[ti].next)
		if (tmpl_eq(c, &a->tmpls[ti], l.p, l.len) &&
		    covers_next(c, a->tmpls[ti].child, l.next))
			return true;
	return false;
}

/* Does a rule with @want in the client's section or the patterns
 * intersect (@cover false) or cover the filter? */
static bool any_rule(struct ctx *c, uint32_t sec, const char *f, unsigned want, bool cover)
{
	c->want = want;
	if (cover)
		return covers(c, sec, f, true) || covers(c, N_PATTERNS, f, true);
	return isect(c, sec, f, true) || isect(c, N_PATTERNS, f, true);
}

enum smq_acl_sub smq_acl_subscribe(const struct smq_acl *a, const struct smq_acl_user *u,
				   const struct smq_acl_who *who, const char *filter, size_t len)
{
	uint32_t sec = node_of(a, u);
	struct ctx c;

	if (!len || len > SMQ_TOPIC_MAX ||
	    !smq_topic_filter_valid((struct smq_str){ (const uint8_t *)filter, (uint32_t)len }))
		return SMQ_ACL_SUB_DENY;
	if (!ctx_init(&c, a, who, filter, len))
		return SMQ_ACL_SUB_DENY;
	if (any_rule(&c, sec, filter, ACC_DENY, true) ||
	    !any_rule(&c, sec, filter, ACC_READ, false))
		return SMQ_ACL_SUB_DENY;
	if (any_rule(&c, sec, filter, ACC_READ, true) &&
	    !any_rule(&c, sec, filter, ACC_DENY, false))
		return SMQ_ACL_SUB_ALL_READABLE;
	return SMQ_ACL_SUB_CHECK_EACH;
}
