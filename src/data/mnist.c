/*
 * mnist.c - the MNIST IDX reader, through zlib so that plain and
 * gzip-compressed files read alike. Header integers are big-endian:
 * images 2051 | count | rows | cols, then count*rows*cols pixel bytes;
 * labels 2049 | count, then count label bytes. Both headers are checked
 * (magic, 28x28, equal counts, what the file can hold) before the payloads
 * are read, and a payload buffer grows only as data actually arrives, so a
 * lying header can neither allocate much nor make us read out of bounds.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "data/data_internal.h"

#define IDX_IMAGES_MAGIC 2051u
#define IDX_LABELS_MAGIC 2049u
#define IDX_IMAGES_HEADER 16
#define IDX_LABELS_HEADER 8
#define MNIST_SIDE 28u
/* Deflate expands at most about 1032:1, which bounds what a .gz file holds. */
#define GZIP_MAX_RATIO 1032ull
#define IDX_FIRST_CHUNK ((size_t)1 << 20)

typedef struct {
    const char *path; /* borrowed */
    gzFile gz;
    long long file_bytes;
} idx_file;

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static mt_status idx_open(const char *path, idx_file *f)
{
    int fd;

    f->path = path;
    f->gz = NULL;
    MT_CHECK(mt_data_open_regular(path, "MNIST file", &fd, &f->file_bytes));
    f->gz = gzdopen(fd, "rb");
    if (!f->gz) {
        close(fd);
        return MT_FAIL(MT_ERR_MEM, "cannot open MNIST file %s: out of memory in zlib", path);
    }
    gzbuffer(f->gz, 1u << 17);
    return MT_OK;
}

static void idx_close(idx_file *f)
{
    if (f->gz)
        gzclose(f->gz);
    f->gz = NULL;
}

/* Read up to n bytes; *got says how many arrived (fewer at the end of the
 * data, which includes a gzip stream cut short: see idx_cut_note). */
static mt_status idx_read(idx_file *f, uint8_t *buf, size_t n, size_t *got)
{
    *got = 0;
    while (*got < n) {
        unsigned ask = (unsigned)mt_min_sz(n - *got, (size_t)1 << 30);
        int r = gzread(f->gz, buf + *got, ask);
        int err;

        if (r < 0) {
            const char *why = gzerror(f->gz, &err);

            if (err == Z_ERRNO)
                return MT_FAIL(MT_ERR_IO, "cannot read MNIST file %s: %s", f->path,
                               strerror(errno));
            return MT_FAIL(MT_ERR_FORMAT, "MNIST file %s: corrupt gzip data (%s)", f->path, why);
        }
        if (r == 0)
            break;
        *got += (size_t)r;
    }
    return MT_OK;
}

/* A note for messages about data that ended early. */
static const char *idx_cut_note(idx_file *f)
{
    int err;

    gzerror(f->gz, &err);
    return err == Z_BUF_ERROR ? " (the gzip stream is cut short)" : "";
}

/* Read an IDX header: the magic number, then n_dims big-endian sizes. */
static mt_status idx_header(idx_file *f, uint32_t magic, int n_dims, uint32_t *dims)
{
    uint8_t head[IDX_IMAGES_HEADER];
    size_t need = 4 + 4 * (size_t)n_dims, got;
    const char *kind = magic == IDX_IMAGES_MAGIC ? "image" : "label";

    MT_CHECK(idx_read(f, head, need, &got));
    if (got < need)
        return MT_FAIL(MT_ERR_FORMAT,
                       "MNIST file %s is too short for an IDX %s header: "
                       "%zu of %zu bytes%s",
                       f->path, kind, got, need, idx_cut_note(f));
    if (be32(head) != magic)
        return MT_FAIL(MT_ERR_FORMAT,
                       "MNIST file %s: magic number %u (0x%08x), expected %u "
                       "(IDX %s file)",
                       f->path, be32(head), be32(head), magic, kind);
    for (int d = 0; d < n_dims; d++)
        dims[d] = be32(head + 4 + 4 * d);
    return MT_OK;
}

/* Refuse a payload size the file cannot possibly hold (before allocating). */
static mt_status idx_check_room(idx_file *f, size_t header, size_t n_bytes)
{
    unsigned long long room;

    if (gzdirect(f->gz)) {
        room = f->file_bytes > (long long)header ? (unsigned long long)f->file_bytes - header : 0;
        if (n_bytes > room)
            return MT_FAIL(MT_ERR_FORMAT,
                           "MNIST file %s is truncated or its header is corrupt: "
                           "the header declares %zu data bytes, %llu follow it",
                           f->path, n_bytes, room);
        return MT_OK;
    }
    room = (unsigned long long)f->file_bytes * GZIP_MAX_RATIO;
    if (n_bytes > room)
        return MT_FAIL(MT_ERR_FORMAT,
                       "MNIST file %s: the header declares %zu data bytes, more "
                       "than a %lld-byte gzip file can hold: corrupt header",
                       f->path, n_bytes, f->file_bytes);
    return MT_OK;
}

/* Read exactly n_bytes of payload into a new malloc'ed buffer grown as data
 * arrives; fail when the data end early or go on past n_bytes. */
static mt_status idx_payload(idx_file *f, size_t n_bytes, uint8_t **out)
{
    size_t cap = mt_min_sz(n_bytes, IDX_FIRST_CHUNK), got = 0, step;
    uint8_t *buf = malloc(cap ? cap : 1), *grown, extra;
    mt_status st = MT_OK;

    if (!buf)
        return MT_FAIL(MT_ERR_MEM, "out of memory reading MNIST file %s", f->path);
    for (;;) {
        MT_CHECK_GOTO(idx_read(f, buf + got, cap - got, &step), st, fail);
        got += step;
        if (got < cap || cap == n_bytes)
            break;
        cap = mt_min_sz(2 * cap, n_bytes);
        if (!(grown = realloc(buf, cap))) {
            st = MT_FAIL(MT_ERR_MEM, "out of memory reading MNIST file %s", f->path);
            goto fail;
        }
        buf = grown;
    }

    if (got < n_bytes) {
        st = MT_FAIL(MT_ERR_FORMAT,
                     "MNIST file %s is truncated: %zu of the %zu data bytes "
                     "its header declares%s",
                     f->path, got, n_bytes, idx_cut_note(f));
        goto fail;
    }
    MT_CHECK_GOTO(idx_read(f, &extra, 1, &step), st, fail);
    if (step == 0 && *idx_cut_note(f)) {
        st = MT_FAIL(MT_ERR_FORMAT,
                     "MNIST file %s is truncated: its gzip stream ends without "
                     "its trailer",
                     f->path);
        goto fail;
    }
    if (step != 0) {
        st = MT_FAIL(MT_ERR_FORMAT,
                     "MNIST file %s has data past the %zu bytes its header "
                     "declares",
                     f->path, n_bytes);
        goto fail;
    }
    *out = buf;
    return MT_OK;

fail:
    free(buf);
    return st;
}

/* Open both files and check their headers against each other; *count is
 * the number of samples. */
static mt_status mnist_headers(idx_file *img, idx_file *lab, uint32_t *count)
{
    uint32_t idims[3] = {0, 0, 0}, ldims[1] = {0};

    MT_CHECK(idx_header(img, IDX_IMAGES_MAGIC, 3, idims));
    MT_CHECK(idx_header(lab, IDX_LABELS_MAGIC, 1, ldims));
    if (idims[1] != MNIST_SIDE || idims[2] != MNIST_SIDE)
        return MT_FAIL(MT_ERR_FORMAT, "MNIST file %s holds %ux%u images, expected 28x28", img->path,
                       idims[1], idims[2]);
    if (idims[0] == 0)
        return MT_FAIL(MT_ERR_FORMAT, "MNIST file %s declares no images", img->path);
    if (idims[0] != ldims[0])
        return MT_FAIL(MT_ERR_FORMAT,
                       "MNIST files disagree: %s declares %u images, %s %u "
                       "labels",
                       img->path, idims[0], lab->path, ldims[0]);
    MT_CHECK(idx_check_room(img, IDX_IMAGES_HEADER, (size_t)idims[0] * 784));
    MT_CHECK(idx_check_room(lab, IDX_LABELS_HEADER, idims[0]));
    *count = idims[0];
    return MT_OK;
}

/* Read both payloads into a new dataset of `count` samples. */
static mt_status mnist_payloads(idx_file *img, idx_file *lab, size_t count, mt_dataset **out)
{
    uint8_t *pixels = NULL, *labels = NULL;
    mt_dataset *ds = NULL;
    mt_status st = MT_OK;

    MT_CHECK_GOTO(idx_payload(lab, count, &labels), st, done);
    for (size_t i = 0; i < count; i++) {
        if (labels[i] > 9) {
            st = MT_FAIL(MT_ERR_FORMAT, "MNIST file %s: label %zu is %d, expected 0..9", lab->path,
                         i, labels[i]);
            goto done;
        }
    }
    MT_CHECK_GOTO(idx_payload(img, count * 784, &pixels), st, done);
    MT_CHECK_GOTO(mt_data_new(MT_DATASET_MNIST, count, &ds), st, done);
    memcpy(ds->pixels, pixels, count * 784);
    for (size_t i = 0; i < count; i++)
        ds->labels[i] = labels[i];
    *out = ds;

done:
    free(pixels);
    free(labels);
    return st;
}

mt_status mt_mnist_read(const char *images_path, const char *labels_path, mt_dataset **ds)
{
    idx_file img = {images_path, NULL, 0}, lab = {labels_path, NULL, 0};
    mt_dataset *tail = NULL;
    uint32_t count = 0;
    mt_status st = MT_OK;

    if (!images_path || !labels_path || !ds)
        return MT_FAIL(MT_ERR_ARG, "mt_mnist_read: NULL path or dataset");
    MT_CHECK_GOTO(idx_open(images_path, &img), st, done);
    MT_CHECK_GOTO(idx_open(labels_path, &lab), st, done);
    MT_CHECK_GOTO(mnist_headers(&img, &lab, &count), st, done);
    MT_CHECK_GOTO(mnist_payloads(&img, &lab, count, &tail), st, done);
    MT_CHECK_GOTO(mt_data_append(ds, tail), st, done);

done:
    idx_close(&img);
    idx_close(&lab);
    return st;
}

/* The plain or .gz file `stem` in dir (plain first), or fail naming both. */
static mt_status mnist_pick(const char *dir, const char *stem, char *out, size_t cap)
{
    char gz[MT_DATA_PATH_MAX];

    MT_CHECK(mt_data_join(out, cap, dir, stem));
    if (mt_data_is_file(out))
        return MT_OK;
    if (snprintf(gz, sizeof gz, "%s.gz", out) >= (int)sizeof gz || strlen(gz) >= cap)
        return MT_FAIL(MT_ERR_ARG, "path too long: %s.gz", out);
    if (mt_data_is_file(gz)) {
        snprintf(out, cap, "%s", gz);
        return MT_OK;
    }
    return MT_FAIL(MT_ERR_IO, "MNIST file missing: neither %s nor %s exists", out, gz);
}

int mt_mnist_present(const char *dir)
{
    static const char *const names[] = {"train-images-idx3-ubyte", "train-images-idx3-ubyte.gz",
                                        "t10k-images-idx3-ubyte", "t10k-images-idx3-ubyte.gz"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (mt_data_has_file(dir, names[i]))
            return 1;
    return 0;
}

mt_status mt_mnist_load_dir(const char *dir, int train, mt_dataset **out)
{
    char images[MT_DATA_PATH_MAX], labels[MT_DATA_PATH_MAX];
    const char *split = train ? "train" : "t10k";
    char stem[64];

    snprintf(stem, sizeof stem, "%s-images-idx3-ubyte", split);
    MT_CHECK(mnist_pick(dir, stem, images, sizeof images));
    snprintf(stem, sizeof stem, "%s-labels-idx1-ubyte", split);
    MT_CHECK(mnist_pick(dir, stem, labels, sizeof labels));
    MT_CHECK(mt_mnist_read(images, labels, out));
    return MT_OK;
}
