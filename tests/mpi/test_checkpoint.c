/*
 * test_checkpoint.c - parallel HDF5 checkpoints at 1, 2 and 4 ranks: bit-exact
 * round trips, attributes, reading with another owner layout, and damaged or
 * mismatched files failing with the same clear status on every rank while
 * leaving files on disk untouched.
 *
 * Comparisons are bit for bit (memcmp): a checkpoint stores float32 as
 * float32, so no tolerance applies. Expected values are regenerated from the
 * tensor's name, never copied from the buffers that were written.
 *
 * For tests/integration/test_ckpt_h5py.sh, the round-trip test also leaves
 * its checkpoint at $MTRAIN_CKPT_KEEP, and reads $MTRAIN_CKPT_CHECK (a copy
 * rewritten by h5py) expecting the same tensors and attribute values.
 */
#define _XOPEN_SOURCE 700
#include <float.h>
#include <ftw.h>
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mtrain/checkpoint.h"
#include "testutil.h"

#define N_SPECS 6
#define MAX_TENSORS 8
#define MAX_ATTRS 8

static const struct {
    const char *name;
    int ndim;
    int dims[4];
} SPECS[N_SPECS] = {
    {"model/features.0.weight", 4, {8, 3, 3, 3}},
    {"model/features.0.bias", 1, {8}},
    {"model/classifier.weight", 2, {10, 72}},
    {"optim/features.0.weight/momentum_buffer", 4, {8, 3, 3, 3}},
    {"optim/classifier.weight/exp_avg", 2, {10, 72}},
    {"extra/odd", 3, {5, 7, 129}},
};

typedef struct {
    mt_ckpt_state st;
    mt_ckpt_tensor tensors[MAX_TENSORS];
    mt_ckpt_attr attrs[MAX_ATTRS];
} fixture;

static int rank_of_world(void)
{
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    return rank;
}

static int size_of_world(void)
{
    int size;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    return size;
}

/* 1 on every rank when v is the same on every rank. */
static int same_everywhere(int v)
{
    int lo, hi;
    MPI_Allreduce(&v, &lo, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(&v, &hi, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    return lo == hi;
}

/* The values a tensor must hold: seeded by its name, with a few special
 * floats at the front of the first one (bit patterns must survive too). */
static void expected_values(const char *name, float *x, size_t n)
{
    mt_test_fill(x, n, -2.0f, 2.0f, mt_hash_str(name));
    if (strcmp(name, SPECS[0].name) == 0) {
        uint32_t quiet_nan = 0x7fc01234u;
        x[0] = -0.0f;
        x[1] = FLT_MIN / 8.0f; /* subnormal */
        x[2] = FLT_MAX;
        x[3] = -INFINITY;
        memcpy(&x[4], &quiet_nan, sizeof quiet_nan);
    }
}

static void add_tensor(fixture *f, const char *name, int ndim, const int *dims, int owner, int fill)
{
    mt_ckpt_tensor *t = &f->tensors[f->st.n_tensors++];

    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = ndim;
    t->n = 1;
    for (int d = 0; d < ndim; d++) {
        t->dims[d] = dims[d];
        t->n *= (size_t)dims[d];
    }
    t->owner = owner;
    if (owner != rank_of_world())
        return;
    t->data = mt_alloc(t->n * sizeof(float));
    if (fill)
        expected_values(name, t->data, t->n);
    else
        memset(t->data, 0xff, t->n * sizeof(float)); /* a NaN pattern no tensor holds */
}

static void drop_last_tensor(fixture *f)
{
    f->st.n_tensors--;
    mt_free(f->tensors[f->st.n_tensors].data);
    f->tensors[f->st.n_tensors].data = NULL;
}

static void add_attr(fixture *f, const char *name, int is_string, int64_t value, const char *text)
{
    mt_ckpt_attr *a = &f->attrs[f->st.n_attrs++];

    memset(a, 0, sizeof *a);
    snprintf(a->name, sizeof a->name, "%s", name);
    a->is_string = is_string;
    a->value = value;
    snprintf(a->text, sizeof a->text, "%s", text ? text : "");
}

/* A long multi-line UTF-8 string, like a saved configuration. */
static const char *config_text(void)
{
    static char text[3200];
    size_t used = 0;

    for (int i = 0; used + 80 < sizeof text; i++)
        used += (size_t)snprintf(text + used, sizeof text - used,
                                 "option_%03d = %d  # \xce\xbb=0.5 \xce\xba=%d\n", i, i * 7, i);
    return text;
}

/* The list of the suite: owner of tensor i is (i + shift) % n_owners.
 * `fill` gives owners the expected values (to write) or a sentinel (to read);
 * attributes carry their values, or only names and kinds when !fill. */
static void make_fixture(fixture *f, int n_owners, int shift, int fill)
{
    memset(f, 0, sizeof *f);
    f->st.tensors = f->tensors;
    f->st.attrs = f->attrs;
    for (int i = 0; i < N_SPECS; i++)
        add_tensor(f, SPECS[i].name, SPECS[i].ndim, SPECS[i].dims, (i + shift) % n_owners, fill);
    add_attr(f, "step", 0, fill ? 1234567890123LL : 0, NULL);
    add_attr(f, "epoch", 0, fill ? 7 : 0, NULL);
    add_attr(f, "seed", 0, fill ? -42 : 0, NULL);
    add_attr(f, "format_version", 0, fill ? MT_CKPT_FORMAT_VERSION : 0, NULL);
    add_attr(f, "net", 1, 0, fill ? "allcnn" : "");
    add_attr(f, "config", 1, 0, fill ? config_text() : "");
    add_attr(f, "note", 1, 0, fill ? "" : "placeholder");
}

static void free_fixture(fixture *f)
{
    for (int i = 0; i < f->st.n_tensors; i++)
        mt_free(f->tensors[i].data);
    memset(f, 0, sizeof *f);
}

/* Owners check their buffers against the expected values, bit for bit. */
static int tensors_match(const fixture *f)
{
    int ok = 1;

    for (int i = 0; i < f->st.n_tensors; i++) {
        const mt_ckpt_tensor *t = &f->tensors[i];
        if (!t->data)
            continue;
        float *want = mt_alloc(t->n * sizeof(float));
        expected_values(t->name, want, t->n);
        if (memcmp(want, t->data, t->n * sizeof(float)) != 0) {
            fprintf(stderr, "tensor %s differs on rank %d\n", t->name, rank_of_world());
            ok = 0;
        }
        mt_free(want);
    }
    return ok;
}

/* Owners' buffers still hold the read sentinel (a failed read filled nothing). */
static int tensors_untouched(const fixture *f)
{
    int ok = 1;

    for (int i = 0; i < f->st.n_tensors; i++) {
        const mt_ckpt_tensor *t = &f->tensors[i];
        const unsigned char *bytes = (const unsigned char *)t->data;
        for (size_t k = 0; bytes && k < t->n * sizeof(float); k++)
            ok = ok && bytes[k] == 0xff;
    }
    return ok;
}

/* Every attribute of the suite's list holds the value written. */
static int attrs_match(fixture *r)
{
    fixture want;
    int ok = 1;

    make_fixture(&want, 1, 0, 1);
    for (int i = 0; i < want.st.n_attrs; i++) {
        const mt_ckpt_attr *w = &want.attrs[i], *got = mt_ckpt_attr_find(&r->st, w->name);
        if (!got || got->is_string != w->is_string || got->value != w->value ||
            strcmp(got->text, w->text) != 0) {
            fprintf(stderr, "attribute %s differs on rank %d\n", w->name, rank_of_world());
            ok = 0;
        }
    }
    free_fixture(&want);
    return ok;
}

/* ---- files ---------------------------------------------------------------- */

static char tmp_dir[64];

static void make_tmpdir(void)
{
    if (rank_of_world() == 0 && mt_test_tmpdir(tmp_dir, sizeof tmp_dir, "mt_ckpt") != 0)
        tmp_dir[0] = '\0';
    MPI_Bcast(tmp_dir, sizeof tmp_dir, MPI_CHAR, 0, MPI_COMM_WORLD);
    CU_ASSERT_FATAL(tmp_dir[0] != '\0');
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static void remove_tmpdir(void)
{
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank_of_world() == 0)
        CU_ASSERT(nftw(tmp_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS) == 0);
    MPI_Barrier(MPI_COMM_WORLD);
}

static void path_in_tmp(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", tmp_dir, name);
}

/* The whole content of a file (rank 0 only; *n_bytes = -1 when unreadable). */
static unsigned char *slurp(const char *path, long *n_bytes)
{
    FILE *fp = fopen(path, "rb");
    unsigned char *buf = NULL;

    *n_bytes = -1;
    if (!fp)
        return NULL;
    if (fseek(fp, 0, SEEK_END) == 0 && (*n_bytes = ftell(fp)) >= 0) {
        buf = malloc((size_t)*n_bytes + 1);
        rewind(fp);
        if (!buf || fread(buf, 1, (size_t)*n_bytes, fp) != (size_t)*n_bytes)
            *n_bytes = -1;
    }
    fclose(fp);
    return buf;
}

/* Rank 0: the file still has exactly `size` bytes equal to `bytes`. */
static int file_unchanged(const char *path, const unsigned char *bytes, long size)
{
    long now_size;
    unsigned char *now = slurp(path, &now_size);
    int same = now && now_size == size && memcmp(now, bytes, (size_t)size) == 0;

    free(now);
    return same;
}

static int exists(const char *path)
{
    return access(path, F_OK) == 0;
}

/* Expect `got` == `want` on every rank, and the message to name `needle`. */
static void expect_failure(mt_status got, mt_status want, const char *needle)
{
    int all_agree = same_everywhere((int)got);

    CU_ASSERT_EQUAL(got, want);
    CU_ASSERT(all_agree);
    if (needle && !strstr(mt_error_message(), needle)) {
        fprintf(stderr, "rank %d: message \"%s\" lacks \"%s\"\n", rank_of_world(),
                mt_error_message(), needle);
        CU_FAIL("error message does not name what failed");
    }
    mt_error_clear();
}

static void write_reference(const char *path)
{
    fixture w;

    make_fixture(&w, size_of_world(), 0, 1);
    MT_TEST_OK(mt_checkpoint_write(MPI_COMM_WORLD, path, &w.st));
    free_fixture(&w);
}

/* ---- tests ---------------------------------------------------------------- */

static void test_roundtrip(void)
{
    char path[128], tmp[140];
    const char *keep = getenv("MTRAIN_CKPT_KEEP");
    const char *check = getenv("MTRAIN_CKPT_CHECK");
    fixture w, r;

    mt_error_clear();
    make_tmpdir();
    path_in_tmp(path, sizeof path, "ckpt.h5");
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    make_fixture(&w, size_of_world(), 0, 1);
    MT_TEST_OK(mt_checkpoint_write(MPI_COMM_WORLD, path, &w.st));
    CU_ASSERT(exists(path));
    CU_ASSERT(!exists(tmp));
    if (keep)
        MT_TEST_OK(mt_checkpoint_write(MPI_COMM_WORLD, keep, &w.st));

    /* A successful read leaves the file byte for byte as it was. */
    long size = -1;
    unsigned char *before = rank_of_world() == 0 ? slurp(path, &size) : NULL;
    make_fixture(&r, size_of_world(), 0, 0);
    MT_TEST_OK(mt_checkpoint_read(MPI_COMM_WORLD, path, &r.st));
    CU_ASSERT(tensors_match(&r));
    if (rank_of_world() == 0)
        CU_ASSERT(before && file_unchanged(path, before, size));
    free(before);

    /* Attributes: every value back, read into a list that held none. */
    CU_ASSERT(attrs_match(&r));
    CU_ASSERT_PTR_NULL(mt_ckpt_attr_find(&r.st, "no_such_attribute"));
    free_fixture(&w);
    free_fixture(&r);

    /* A file another tool rewrote (see test_ckpt_h5py.sh) reads the same. */
    if (check) {
        make_fixture(&r, size_of_world(), 0, 0);
        MT_TEST_OK(mt_checkpoint_read(MPI_COMM_WORLD, check, &r.st));
        CU_ASSERT(tensors_match(&r));
        CU_ASSERT(attrs_match(&r));
        free_fixture(&r);
    }
    remove_tmpdir();
}

/* A second write replaces the first; the old content is gone. */
static void test_replace(void)
{
    char path[128];
    fixture w, r;

    mt_error_clear();
    make_tmpdir();
    path_in_tmp(path, sizeof path, "ckpt.h5");
    write_reference(path);
    make_fixture(&w, size_of_world(), 0, 1);
    mt_ckpt_attr_find(&w.st, "step")->value = 99;
    snprintf(mt_ckpt_attr_find(&w.st, "net")->text, 4096, "mlp");
    MT_TEST_OK(mt_checkpoint_write(MPI_COMM_WORLD, path, &w.st));

    make_fixture(&r, size_of_world(), 0, 0);
    MT_TEST_OK(mt_checkpoint_read(MPI_COMM_WORLD, path, &r.st));
    CU_ASSERT(tensors_match(&r));
    CU_ASSERT_EQUAL(mt_ckpt_attr_find(&r.st, "step")->value, 99);
    CU_ASSERT_STRING_EQUAL(mt_ckpt_attr_find(&r.st, "net")->text, "mlp");
    free_fixture(&w);
    free_fixture(&r);
    remove_tmpdir();
}

/* Written by at most 2 owners, read back by other layouts: names are all
 * that tie a dataset to a tensor. */
static void test_elastic(void)
{
    char path[128];
    int size = size_of_world();
    fixture w, r;

    mt_error_clear();
    make_tmpdir();
    path_in_tmp(path, sizeof path, "ckpt.h5");
    make_fixture(&w, size < 2 ? size : 2, 0, 1);
    MT_TEST_OK(mt_checkpoint_write(MPI_COMM_WORLD, path, &w.st));

    make_fixture(&r, size, 1, 0); /* shifted round robin over all ranks */
    MT_TEST_OK(mt_checkpoint_read(MPI_COMM_WORLD, path, &r.st));
    CU_ASSERT(tensors_match(&r));
    free_fixture(&r);

    make_fixture(&r, size, 0, 0); /* everything on the last rank */
    for (int i = 0; i < r.st.n_tensors; i++) {
        mt_free(r.tensors[i].data);
        r.tensors[i].data = NULL;
        r.tensors[i].owner = size - 1;
        if (rank_of_world() == size - 1) {
            r.tensors[i].data = mt_alloc(r.tensors[i].n * sizeof(float));
            memset(r.tensors[i].data, 0xff, r.tensors[i].n * sizeof(float));
        }
    }
    MT_TEST_OK(mt_checkpoint_read(MPI_COMM_WORLD, path, &r.st));
    CU_ASSERT(tensors_match(&r));
    free_fixture(&r);
    free_fixture(&w);
    remove_tmpdir();
}

/* Same element count, other shape or rank: refused before any data moves. */
static void test_wrong_shape(void)
{
    char path[128], needle[256];
    fixture r;

    mt_error_clear();
    make_tmpdir();
    path_in_tmp(path, sizeof path, "ckpt.h5");
    write_reference(path);

    make_fixture(&r, size_of_world(), 0, 0);
    r.tensors[2].dims[0] = 72;
    r.tensors[2].dims[1] = 10;
    snprintf(needle, sizeof needle,
             "%s: dataset model/classifier.weight has shape [10,72], expected [72,10]", path);
    expect_failure(mt_checkpoint_read(MPI_COMM_WORLD, path, &r.st), MT_ERR_FORMAT, needle);
    CU_ASSERT(tensors_untouched(&r));
    CU_ASSERT_EQUAL(mt_ckpt_attr_find(&r.st, "step")->value, 0);

    r.tensors[2].ndim = 1;
    r.tensors[2].dims[0] = 720;
    expect_failure(mt_checkpoint_read(MPI_COMM_WORLD, path, &r.st), MT_ERR_FORMAT,
                   "has shape [10,72], expected [720]");
    CU_ASSERT(tensors_untouched(&r));
    free_fixture(&r);
    remove_tmpdir();
}

static void test_missing(void)
{
    char path[128], absent[128];
    const int dims[1] = {4};
    fixture r;

    mt_error_clear();
    make_tmpdir();
    path_in_tmp(path, sizeof path, "ckpt.h5");
    path_in_tmp(absent, sizeof absent, "absent.h5");
    write_reference(path);

    make_fixture(&r, size_of_world(), 0, 0);
    add_tensor(&r, "model/extra.weight", 1, dims, 0, 0);
    expect_failure(mt_checkpoint_read(MPI_COMM_WORLD, path, &r.st), MT_ERR_FORMAT,
                   "dataset model/extra.weight is missing");
    drop_last_tensor(&r);
    add_tensor(&r, "nogroup/deeper/x", 1, dims, 0, 0);
    expect_failure(mt_checkpoint_read(MPI_COMM_WORLD, path, &r.st), MT_ERR_FORMAT,
                   "dataset nogroup/deeper/x is missing");
    drop_last_tensor(&r);

    add_attr(&r, "lr_schedule", 1, 0, NULL);
    expect_failure(mt_checkpoint_read(MPI_COMM_WORLD, path, &r.st), MT_ERR_FORMAT,
                   "attribute lr_schedule is missing");
    r.st.n_attrs--;
    mt_ckpt_attr_find(&r.st, "net")->is_string = 0;
    expect_failure(mt_checkpoint_read(MPI_COMM_WORLD, path, &r.st), MT_ERR_FORMAT,
                   "attribute net is not an integer");
    mt_ckpt_attr_find(&r.st, "net")->is_string = 1;
    mt_ckpt_attr_find(&r.st, "step")->is_string = 1;
    expect_failure(mt_checkpoint_read(MPI_COMM_WORLD, path, &r.st), MT_ERR_FORMAT,
                   "attribute step is not a string");
    mt_ckpt_attr_find(&r.st, "step")->is_string = 0;
    CU_ASSERT(tensors_untouched(&r));

    expect_failure(mt_checkpoint_read(MPI_COMM_WORLD, absent, &r.st), MT_ERR_IO, absent);
    MT_TEST_OK(mt_checkpoint_read(MPI_COMM_WORLD, path, &r.st)); /* and all is well again */
    CU_ASSERT(tensors_match(&r));
    free_fixture(&r);
    remove_tmpdir();
}

/* Read `path` expecting MT_ERR_FORMAT naming it; its bytes must not change. */
static void expect_unreadable(const char *path)
{
    long size = -1;
    unsigned char *before = rank_of_world() == 0 ? slurp(path, &size) : NULL;
    fixture r;

    make_fixture(&r, size_of_world(), 0, 0);
    expect_failure(mt_checkpoint_read(MPI_COMM_WORLD, path, &r.st), MT_ERR_FORMAT, path);
    CU_ASSERT(tensors_untouched(&r));
    if (rank_of_world() == 0)
        CU_ASSERT(before && file_unchanged(path, before, size));
    free(before);
    free_fixture(&r);
}

static void test_not_hdf5(void)
{
    char path[128];

    mt_error_clear();
    make_tmpdir();
    path_in_tmp(path, sizeof path, "notes.h5");
    if (rank_of_world() == 0) {
        FILE *fp = fopen(path, "w");
        for (int i = 0; fp && i < 200; i++)
            fprintf(fp, "line %d of a text file that is not a checkpoint\n", i);
        CU_ASSERT(fp && fclose(fp) == 0);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    expect_unreadable(path);
    remove_tmpdir();
}

/* Rank 0: copy src to dst and cut it to n_bytes with truncate(2). */
static int copy_truncated(const char *src, const char *dst, long n_bytes)
{
    long size;
    unsigned char *bytes = slurp(src, &size);
    FILE *fp = fopen(dst, "wb");
    int ok = bytes && fp && fwrite(bytes, 1, (size_t)size, fp) == (size_t)size;

    ok = fp && fclose(fp) == 0 && ok;
    free(bytes);
    return ok && truncate(dst, n_bytes) == 0;
}

static void test_truncated(void)
{
    char path[128], cut[128];
    long size = 0;

    mt_error_clear();
    make_tmpdir();
    path_in_tmp(path, sizeof path, "ckpt.h5");
    path_in_tmp(cut, sizeof cut, "cut.h5");
    write_reference(path);
    if (rank_of_world() == 0) {
        struct stat sb;
        size = stat(path, &sb) == 0 ? (long)sb.st_size : 0;
    }
    MPI_Bcast(&size, 1, MPI_LONG, 0, MPI_COMM_WORLD);
    CU_ASSERT_FATAL(size > 4096);

    /* One byte short, half, most of the data gone, inside the superblock. */
    const long lengths[] = {size - 1, size / 2, 2048, 40};
    for (size_t k = 0; k < sizeof lengths / sizeof lengths[0]; k++) {
        int ok = rank_of_world() == 0 ? copy_truncated(path, cut, lengths[k]) : 1;
        MPI_Bcast(&ok, 1, MPI_INT, 0, MPI_COMM_WORLD);
        CU_ASSERT_FATAL(ok);
        expect_unreadable(cut);
    }
    remove_tmpdir();
}

/* Failed writes leave the previous checkpoint as it was and no .tmp. */
static void test_failed_write_keeps_old(void)
{
    char path[128], tmp[140], nodir[160];
    long size = -1;
    unsigned char *before = NULL;
    int rank = rank_of_world(), size_w = size_of_world();
    fixture w;

    mt_error_clear();
    make_tmpdir();
    path_in_tmp(path, sizeof path, "ckpt.h5");
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    snprintf(nodir, sizeof nodir, "%s/no_such_dir/ckpt.h5", tmp_dir);
    write_reference(path);
    if (rank == 0)
        before = slurp(path, &size);
    make_fixture(&w, size_w, 0, 1);

    /* 1. the directory does not exist */
    expect_failure(mt_checkpoint_write(MPI_COMM_WORLD, nodir, &w.st), MT_ERR_IO, nodir);
    CU_ASSERT(!exists(nodir));

    /* 2. HDF5 fails after path.tmp exists: model/a is a dataset, not a group */
    const int dims[1] = {3};
    add_tensor(&w, "model/a", 1, dims, 0, 1);
    add_tensor(&w, "model/a/b", 1, dims, size_w - 1, 1);
    expect_failure(mt_checkpoint_write(MPI_COMM_WORLD, path, &w.st), MT_ERR_HDF5,
                   "cannot create dataset model/a/b");
    drop_last_tensor(&w);
    drop_last_tensor(&w);

    /* 3. one rank alone sees a bad list: its owner buffer is missing */
    float *kept = w.tensors[1].data;
    if (rank == w.tensors[1].owner)
        w.tensors[1].data = NULL;
    expect_failure(mt_checkpoint_write(MPI_COMM_WORLD, path, &w.st), MT_ERR_ARG,
                   "tensor model/features.0.bias has no buffer on its owner");
    w.tensors[1].data = kept;

    /* 4. ranks disagree on a shape */
    if (size_w > 1 && rank == 1)
        w.tensors[1].dims[0] = 4, w.tensors[1].n = 4;
    if (size_w > 1)
        expect_failure(mt_checkpoint_write(MPI_COMM_WORLD, path, &w.st), MT_ERR_ARG,
                       "ranks passed different tensor or attribute lists");

    if (rank == 0)
        CU_ASSERT(before && file_unchanged(path, before, size));
    CU_ASSERT(!exists(tmp));
    free(before);
    free_fixture(&w);
    remove_tmpdir();
}

int main(int argc, char **argv)
{
    static const mt_test_case tests[] = {
        {"round trip, bit exact, attributes", test_roundtrip},
        {"second write replaces the first", test_replace},
        {"read with another owner layout", test_elastic},
        {"wrong shape is refused", test_wrong_shape},
        {"missing dataset or attribute, wrong kind", test_missing},
        {"not an HDF5 file, left unchanged", test_not_hdf5},
        {"truncated checkpoints, left unchanged", test_truncated},
        {"failed writes keep the old checkpoint", test_failed_write_keeps_old},
    };
    return mt_test_main_mpi(&argc, &argv, "checkpoint", tests,
                            (int)(sizeof tests / sizeof tests[0]));
}
