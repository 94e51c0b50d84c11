/*
 * locate.c - finding the data directory and telling the data sets apart by
 * their file names. Candidates, in order: $MTRAIN_DATA (which must be a
 * directory when set); then, for each kind
 * wanted (CIFAR-10 before MNIST when the kind is left to detection), the
 * project's data/<set>/ and the development mirror ../shared/data/<set>/,
 * first relative to the current directory, then relative to the project root
 * guessed from the executable's path (build/mtrain -> build/ -> root).
 */
#define _XOPEN_SOURCE 700
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/data_internal.h"

#define LOCATE_MAX_ROOTS 3
#define LOCATE_LIST_MAX 480 /* characters of "looked in" list in messages */

/* The folder a data set lives in under data/ and under ../shared/data/. */
static const char *set_folder(mt_dataset_kind kind, int shared)
{
    if (kind == MT_DATASET_MNIST)
        return "mnist";
    return shared ? "cifar10" : "cifar-10-batches-bin";
}

/* The kind `dir` holds among those wanted (AUTO = any), or AUTO for none. */
static mt_dataset_kind kind_in(const char *dir, mt_dataset_kind want)
{
    if (want != MT_DATASET_MNIST && mt_cifar_present(dir))
        return MT_DATASET_CIFAR10;
    if (want != MT_DATASET_CIFAR10 && mt_mnist_present(dir))
        return MT_DATASET_MNIST;
    return MT_DATASET_AUTO;
}

mt_status mt_data_detect(const char *dir, mt_dataset_kind *kind)
{
    *kind = kind_in(dir, MT_DATASET_AUTO);
    if (*kind == MT_DATASET_AUTO)
        return MT_FAIL(MT_ERR_IO,
                       "%s holds neither CIFAR-10 files (data_batch_N.bin, "
                       "test_batch.bin) nor MNIST files (train-images-idx3-ubyte[.gz], "
                       "t10k-images-idx3-ubyte[.gz])",
                       dir);
    return MT_OK;
}

/* Search state: the roots to try and the paths tried so far (for messages). */
typedef struct {
    char roots[LOCATE_MAX_ROOTS][MT_DATA_PATH_MAX];
    int n_roots;
    char tried[LOCATE_LIST_MAX + 8];
} locate_ctx;

static void note_tried(locate_ctx *ctx, const char *path)
{
    size_t used = strlen(ctx->tried);

    if (used >= LOCATE_LIST_MAX)
        return;
    snprintf(ctx->tried + used, sizeof ctx->tried - used, "%s%s", used ? ", " : "", path);
    if (strlen(ctx->tried) >= LOCATE_LIST_MAX)
        snprintf(ctx->tried + LOCATE_LIST_MAX - 3, 8, "...");
}

/* Add `root` unless it is the same directory as one already listed. */
static void add_root(locate_ctx *ctx, const char *root)
{
    char real[PATH_MAX], other[PATH_MAX];

    if (ctx->n_roots >= LOCATE_MAX_ROOTS || !realpath(root, real))
        return;
    for (int i = 0; i < ctx->n_roots; i++)
        if (realpath(ctx->roots[i], other) && strcmp(real, other) == 0)
            return;
    snprintf(ctx->roots[ctx->n_roots++], MT_DATA_PATH_MAX, "%s", root);
}

/* Cut the last component off an absolute path ("/a/b" -> "/a", "/a" -> "/"). */
static void strip_last(char *path)
{
    char *slash = strrchr(path, '/');

    if (slash == path)
        path[1] = '\0';
    else if (slash)
        *slash = '\0';
}

/* Roots: the current directory, then the parent and grandparent of the
 * executable's directory (build/ and build/tests/ both lead to the root). */
static void find_roots(locate_ctx *ctx)
{
    char exe[MT_DATA_PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);

    add_root(ctx, ".");
    if (len <= 0)
        return;
    exe[len] = '\0';
    strip_last(exe); /* the executable's directory */
    strip_last(exe);
    add_root(ctx, exe);
    strip_last(exe);
    add_root(ctx, exe);
}

/* Try one candidate directory; 1 (and found, kind filled) when it holds the
 * data set wanted. */
static int try_dir(locate_ctx *ctx, const char *dir, mt_dataset_kind want, mt_dataset_kind *kind,
                   char *found, size_t found_cap)
{
    mt_dataset_kind got;

    note_tried(ctx, dir);
    if (!mt_data_is_dir(dir) || (got = kind_in(dir, want)) == MT_DATASET_AUTO)
        return 0;
    if (strlen(dir) >= found_cap)
        return 0;
    snprintf(found, found_cap, "%s", dir);
    *kind = got;
    return 1;
}

/* Try `base` itself, then its data-set folders (data/ or shared layout). */
static int try_base(locate_ctx *ctx, const char *base, mt_dataset_kind want, mt_dataset_kind *kind,
                    char *found, size_t found_cap)
{
    static const char *const subs[] = {"cifar-10-batches-bin", "cifar10", "mnist"};
    char path[MT_DATA_PATH_MAX];

    if (try_dir(ctx, base, want, kind, found, found_cap))
        return 1;
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++) {
        if (mt_data_join(path, sizeof path, base, subs[i]) != MT_OK)
            return 0;
        if (mt_data_is_dir(path) && try_dir(ctx, path, want, kind, found, found_cap))
            return 1;
    }
    return 0;
}

/* Try data/<set> and ../shared/data/<set> under every root, for one kind. */
static int try_roots(locate_ctx *ctx, mt_dataset_kind want, mt_dataset_kind *kind, char *found,
                     size_t found_cap)
{
    char path[MT_DATA_PATH_MAX];

    for (int r = 0; r < ctx->n_roots; r++) {
        const char *root = strcmp(ctx->roots[r], ".") == 0 ? "" : ctx->roots[r];

        for (int shared = 0; shared <= 1; shared++) {
            int n = snprintf(path, sizeof path, "%s%s%s/%s", root, *root ? "/" : "",
                             shared ? "../shared/data" : "data", set_folder(want, shared));

            if (n > 0 && (size_t)n < sizeof path &&
                try_dir(ctx, path, want, kind, found, found_cap))
                return 1;
        }
    }
    return 0;
}

/* The one-line error when nothing was found: where the data should go. */
static mt_status not_found(const locate_ctx *ctx, mt_dataset_kind want)
{
    if (want == MT_DATASET_MNIST)
        return MT_FAIL(MT_ERR_IO,
                       "no MNIST data found (looked in %s): put "
                       "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
                       "t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz in data/mnist/, "
                       "or pass --data DIR, or set MTRAIN_DATA=DIR",
                       ctx->tried);
    return MT_FAIL(MT_ERR_IO,
                   "no %s data found (looked in %s): put the CIFAR-10 binary files "
                   "(data_batch_1.bin ... data_batch_5.bin, test_batch.bin) in "
                   "data/cifar-10-batches-bin/%s, or pass --data DIR, or set MTRAIN_DATA=DIR; "
                   "run data/get-cifar10.sh to download them",
                   want == MT_DATASET_AUTO ? "CIFAR-10 or MNIST" : "CIFAR-10", ctx->tried,
                   want == MT_DATASET_AUTO ? " (MNIST: data/mnist/)" : "");
}

/* An explicit directory must exist and hold the data set (or a folder of it). */
static mt_status locate_given(locate_ctx *ctx, const char *dir, mt_dataset_kind *kind, char *found,
                              size_t found_cap)
{
    if (!mt_data_is_dir(dir))
        return MT_FAIL(MT_ERR_IO,
                       "data directory %s does not exist (or is not a directory); "
                       "run data/get-cifar10.sh to fetch CIFAR-10 into "
                       "data/cifar-10-batches-bin/",
                       dir);
    if (try_base(ctx, dir, *kind, kind, found, found_cap))
        return MT_OK;
    if (*kind == MT_DATASET_MNIST)
        return MT_FAIL(MT_ERR_IO,
                       "%s holds no MNIST files (train-images-idx3-ubyte[.gz], "
                       "t10k-images-idx3-ubyte[.gz] and their label files)",
                       dir);
    return MT_FAIL(MT_ERR_IO,
                   "%s holds no %s files (data_batch_N.bin, test_batch.bin%s); "
                   "run data/get-cifar10.sh to fetch CIFAR-10",
                   dir, *kind == MT_DATASET_AUTO ? "CIFAR-10 or MNIST" : "CIFAR-10",
                   *kind == MT_DATASET_AUTO ? "; or MNIST's train-images-idx3-ubyte[.gz]" : "");
}

mt_status mt_data_locate(const char *dir, mt_dataset_kind *kind, char *found, size_t found_cap)
{
    locate_ctx ctx = {.n_roots = 0};
    const char *env = getenv("MTRAIN_DATA");
    mt_dataset_kind want;

    if (!kind || !found || found_cap < 2)
        return MT_FAIL(MT_ERR_ARG, "mt_data_locate: NULL kind or no room for the path");
    if (dir) {
        MT_CHECK(locate_given(&ctx, dir, kind, found, found_cap));
        return MT_OK;
    }

    want = *kind;
    if (env && *env && !mt_data_is_dir(env))
        return MT_FAIL(MT_ERR_IO, "MTRAIN_DATA=%s is not a directory; point it at the data "
                       "or unset it", env);
    if (env && *env && try_base(&ctx, env, want, kind, found, found_cap))
        return MT_OK;
    find_roots(&ctx);
    if (want != MT_DATASET_MNIST && try_roots(&ctx, MT_DATASET_CIFAR10, kind, found, found_cap))
        return MT_OK;
    if (want != MT_DATASET_CIFAR10 && try_roots(&ctx, MT_DATASET_MNIST, kind, found, found_cap))
        return MT_OK;
    return not_found(&ctx, want);
}
