/*
 * ckpt_h5.c - the HDF5 side of checkpointing: opening the file with the
 * MPI-IO driver, creating and checking float32 datasets, and int64 / string
 * attributes on the root group. Every call is checked; a failure records a
 * message naming the file and the innermost entry of the HDF5 error stack.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "checkpoint/ckpt_internal.h"

/* H5Ewalk2 callback: keep the description of the innermost error. */
static herr_t keep_innermost(unsigned n, const H5E_error2_t *err, void *data)
{
    if (n == 0 && err->desc)
        snprintf((char *)data, 256, "%s", err->desc);
    return 0;
}

mt_status mt_ckpt_h5_fail(mt_status code, const char *file, int line, const char *path,
                          const char *fmt, ...)
{
    char what[512], detail[256] = "";
    va_list ap;

    /* Read the stack first: the next HDF5 call would clear it. */
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, keep_innermost, detail);
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (detail[0])
        return mt_error_set(code, file, line, "%s: %s (HDF5: %s)", path, what, detail);
    return mt_error_set(code, file, line, "%s: %s", path, what);
}

/* Close any kind of id we hold; invalid ids are skipped. */
static herr_t release(hid_t id)
{
    if (id < 0)
        return 0;
    switch (H5Iget_type(id)) {
    case H5I_DATASET:
        return H5Dclose(id);
    case H5I_ATTR:
        return H5Aclose(id);
    case H5I_DATASPACE:
        return H5Sclose(id);
    case H5I_DATATYPE:
        return H5Tclose(id);
    case H5I_GENPROP_LST:
        return H5Pclose(id);
    case H5I_FILE:
        return H5Fclose(id);
    default:
        return H5Idec_ref(id) < 0 ? -1 : 0;
    }
}

static mt_status open_file(MPI_Comm comm, const char *path, int create, hid_t *file)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    mt_status status = MT_OK;

    *file = H5I_INVALID_HID;
    if (fapl < 0 || H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL) < 0) {
        status = MT_CKPT_H5_FAIL(MT_ERR_HDF5, path, "cannot set up the MPI-IO file driver");
    } else if (create) {
        /* The 1.8 format: superblock v2 and object headers v2 carry
         * checksums, so damaged metadata is refused rather than misread. */
        if (H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_LATEST) < 0)
            status = MT_CKPT_H5_FAIL(MT_ERR_HDF5, path, "cannot select the file format");
        else
            *file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
        if (status == MT_OK && *file < 0)
            status = MT_CKPT_H5_FAIL(MT_ERR_IO, path, "cannot create the HDF5 file");
    } else {
        /* The probe found an HDF5 signature: failing now means damage. */
        *file = H5Fopen(path, H5F_ACC_RDONLY, fapl);
        if (*file < 0)
            status = MT_CKPT_H5_FAIL(MT_ERR_FORMAT, path,
                                     "not a readable HDF5 file (truncated or damaged)");
    }
    release(fapl);
    return status;
}

mt_status mt_ckpt_h5_create(MPI_Comm comm, const char *path, hid_t *file)
{
    return open_file(comm, path, 1, file);
}

mt_status mt_ckpt_h5_open(MPI_Comm comm, const char *path, hid_t *file)
{
    return open_file(comm, path, 0, file);
}

mt_status mt_ckpt_h5_close(const char *path, hid_t file, hid_t *dsets, int n)
{
    mt_status status = MT_OK;

    for (int i = 0; i < n; i++) {
        if (release(dsets[i]) < 0 && status == MT_OK)
            status = MT_CKPT_H5_FAIL(MT_ERR_HDF5, path, "cannot close a dataset");
        dsets[i] = H5I_INVALID_HID;
    }
    if (file >= 0 && H5Fclose(file) < 0 && status == MT_OK)
        status = MT_CKPT_H5_FAIL(MT_ERR_IO, path, "cannot close (flush) the file");
    return status;
}

mt_status mt_ckpt_h5_dataset_create(hid_t file, const char *path, const mt_ckpt_tensor *t,
                                    hid_t *dset)
{
    hsize_t dims[4];
    hid_t space, lcpl, dcpl;
    mt_status status = MT_OK;

    for (int d = 0; d < t->ndim; d++)
        dims[d] = (hsize_t)t->dims[d];
    space = H5Screate_simple(t->ndim, dims, NULL);
    lcpl = H5Pcreate(H5P_LINK_CREATE);
    dcpl = H5Pcreate(H5P_DATASET_CREATE);

    /* Groups on the way are made by HDF5 itself, collectively like the
     * dataset; fill values are skipped because the owner writes it all. */
    if (space < 0 || lcpl < 0 || dcpl < 0 || H5Pset_create_intermediate_group(lcpl, 1) < 0 ||
        H5Pset_layout(dcpl, H5D_CONTIGUOUS) < 0 ||
        H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER) < 0) {
        status = MT_CKPT_H5_FAIL(MT_ERR_HDF5, path, "cannot set up dataset %s", t->name);
    } else {
        *dset = H5Dcreate2(file, t->name, H5T_IEEE_F32LE, space, lcpl, dcpl, H5P_DEFAULT);
        if (*dset < 0)
            status = MT_CKPT_H5_FAIL(MT_ERR_HDF5, path, "cannot create dataset %s", t->name);
    }
    release(space);
    release(lcpl);
    release(dcpl);
    return status;
}

/* Every prefix of the name must exist, so that H5Lexists is well defined. */
static mt_status check_exists(hid_t file, const char *path, const char *name)
{
    char prefix[sizeof((mt_ckpt_tensor *)0)->name];
    size_t len = strlen(name);

    for (size_t i = 0; i <= len; i++) {
        if (name[i] != '/' && name[i] != '\0')
            continue;
        memcpy(prefix, name, i);
        prefix[i] = '\0';
        htri_t found = H5Lexists(file, prefix, H5P_DEFAULT);
        if (found < 0)
            return MT_CKPT_H5_FAIL(MT_ERR_FORMAT, path, "cannot look up dataset %s", name);
        if (found == 0)
            return MT_FAIL(MT_ERR_FORMAT, "%s: dataset %s is missing", path, name);
    }
    return MT_OK;
}

static void format_shape(char *buf, size_t cap, int ndim, const hsize_t *dims)
{
    size_t used = (size_t)snprintf(buf, cap, "[");

    for (int d = 0; d < ndim && used < cap; d++)
        used += (size_t)snprintf(buf + used, cap - used, "%s%llu", d ? "," : "",
                                 (unsigned long long)dims[d]);
    if (used < cap)
        snprintf(buf + used, cap - used, "]");
}

static mt_status check_shape(hid_t dset, const char *path, const mt_ckpt_tensor *t)
{
    hsize_t found[H5S_MAX_RANK], want[4];
    char found_s[200], want_s[100];
    hid_t space = H5Dget_space(dset);
    int ndim = space < 0 ? -1 : H5Sget_simple_extent_dims(space, found, NULL);
    int same = ndim == t->ndim;

    if (ndim < 0) {
        mt_status status =
            MT_CKPT_H5_FAIL(MT_ERR_FORMAT, path, "cannot read the shape of dataset %s", t->name);
        release(space);
        return status;
    }
    release(space);
    for (int d = 0; d < t->ndim; d++) {
        want[d] = (hsize_t)t->dims[d];
        same = same && found[d] == want[d];
    }
    if (same)
        return MT_OK;
    format_shape(found_s, sizeof found_s, ndim, found);
    format_shape(want_s, sizeof want_s, t->ndim, want);
    return MT_FAIL(MT_ERR_FORMAT, "%s: dataset %s has shape %s, expected %s", path, t->name,
                   found_s, want_s);
}

static mt_status check_type(hid_t dset, const char *path, const mt_ckpt_tensor *t)
{
    hid_t type = H5Dget_type(dset);
    H5T_class_t cls = type < 0 ? H5T_NO_CLASS : H5Tget_class(type);
    size_t size = type < 0 ? 0 : H5Tget_size(type);

    release(type);
    if (cls == H5T_FLOAT && size == 4)
        return MT_OK;
    return MT_FAIL(MT_ERR_FORMAT, "%s: dataset %s has type %s of %zu bytes, expected float32", path,
                   t->name,
                   cls == H5T_FLOAT     ? "float"
                   : cls == H5T_INTEGER ? "integer"
                                        : "non-number",
                   size);
}

mt_status mt_ckpt_h5_dataset_check(hid_t file, const char *path, const mt_ckpt_tensor *t,
                                   hid_t *dset)
{
    MT_CHECK(check_exists(file, path, t->name));
    *dset = H5Dopen2(file, t->name, H5P_DEFAULT);
    if (*dset < 0)
        return MT_CKPT_H5_FAIL(MT_ERR_FORMAT, path, "%s is not a dataset", t->name);
    MT_CHECK(check_type(*dset, path, t));
    MT_CHECK(check_shape(*dset, path, t));
    return MT_OK;
}

/* Variable-length UTF-8 string: h5py reads it back as a Python str. */
static hid_t string_type(H5T_cset_t cset)
{
    hid_t type = H5Tcopy(H5T_C_S1);

    if (type >= 0 && (H5Tset_size(type, H5T_VARIABLE) < 0 || H5Tset_cset(type, cset) < 0)) {
        release(type);
        return H5I_INVALID_HID;
    }
    return type;
}

mt_status mt_ckpt_h5_attr_write(hid_t file, const char *path, const mt_ckpt_attr *a)
{
    const char *text = a->text;
    hid_t type = a->is_string ? string_type(H5T_CSET_UTF8) : H5Tcopy(H5T_STD_I64LE);
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t attr = H5I_INVALID_HID;
    mt_status status = MT_OK;

    if (type < 0 || space < 0) {
        status = MT_CKPT_H5_FAIL(MT_ERR_HDF5, path, "cannot set up attribute %s", a->name);
    } else if ((attr = H5Acreate2(file, a->name, type, space, H5P_DEFAULT, H5P_DEFAULT)) < 0) {
        status = MT_CKPT_H5_FAIL(MT_ERR_HDF5, path, "cannot create attribute %s", a->name);
    } else if ((a->is_string ? H5Awrite(attr, type, &text)
                             : H5Awrite(attr, H5T_NATIVE_INT64, &a->value)) < 0) {
        status = MT_CKPT_H5_FAIL(MT_ERR_HDF5, path, "cannot write attribute %s", a->name);
    }
    release(attr);
    release(space);
    release(type);
    return status;
}

static mt_status read_vlen_string(hid_t attr, hid_t type, const char *path, mt_ckpt_attr *a)
{
    hid_t mem = string_type(H5Tget_cset(type));
    char *value = NULL;
    mt_status status = MT_OK;

    if (mem < 0 || H5Aread(attr, mem, &value) < 0)
        status = MT_CKPT_H5_FAIL(MT_ERR_FORMAT, path, "cannot read attribute %s", a->name);
    else if (value && strlen(value) >= sizeof a->text)
        status = MT_FAIL(MT_ERR_FORMAT, "%s: attribute %s is %zu bytes long, at most %zu fit", path,
                         a->name, strlen(value), sizeof a->text - 1);
    else
        snprintf(a->text, sizeof a->text, "%s", value ? value : "");
    H5free_memory(value);
    release(mem);
    return status;
}

static mt_status read_fixed_string(hid_t attr, hid_t type, const char *path, mt_ckpt_attr *a)
{
    size_t size = H5Tget_size(type);

    if (size == 0 || size >= sizeof a->text)
        return MT_FAIL(MT_ERR_FORMAT, "%s: attribute %s is a string of %zu bytes, at most %zu fit",
                       path, a->name, size, sizeof a->text - 1);
    if (H5Aread(attr, type, a->text) < 0)
        return MT_CKPT_H5_FAIL(MT_ERR_FORMAT, path, "cannot read attribute %s", a->name);
    a->text[size] = '\0';
    return MT_OK;
}

static mt_status read_value(hid_t attr, const char *path, mt_ckpt_attr *a)
{
    hid_t type = H5Aget_type(attr), space = H5Aget_space(attr);
    hssize_t n_points = space < 0 ? -1 : H5Sget_simple_extent_npoints(space);
    H5T_class_t cls = type < 0 ? H5T_NO_CLASS : H5Tget_class(type);
    mt_status status;

    if (n_points != 1)
        status = MT_FAIL(MT_ERR_FORMAT, "%s: attribute %s is not a scalar", path, a->name);
    else if (a->is_string && cls != H5T_STRING)
        status = MT_FAIL(MT_ERR_FORMAT, "%s: attribute %s is not a string", path, a->name);
    else if (!a->is_string && cls != H5T_INTEGER)
        status = MT_FAIL(MT_ERR_FORMAT, "%s: attribute %s is not an integer", path, a->name);
    else if (!a->is_string)
        status = H5Aread(attr, H5T_NATIVE_INT64, &a->value) < 0
                     ? MT_CKPT_H5_FAIL(MT_ERR_FORMAT, path, "cannot read attribute %s", a->name)
                     : MT_OK;
    else if (H5Tis_variable_str(type) > 0)
        status = read_vlen_string(attr, type, path, a);
    else
        status = read_fixed_string(attr, type, path, a);
    release(type);
    release(space);
    return status;
}

mt_status mt_ckpt_h5_attr_read(hid_t file, const char *path, mt_ckpt_attr *a)
{
    htri_t found = H5Aexists(file, a->name);
    hid_t attr;
    mt_status status;

    if (found < 0)
        return MT_CKPT_H5_FAIL(MT_ERR_FORMAT, path, "cannot look up attribute %s", a->name);
    if (found == 0)
        return MT_FAIL(MT_ERR_FORMAT, "%s: attribute %s is missing", path, a->name);
    attr = H5Aopen(file, a->name, H5P_DEFAULT);
    if (attr < 0)
        return MT_CKPT_H5_FAIL(MT_ERR_FORMAT, path, "cannot open attribute %s", a->name);
    status = read_value(attr, path, a);
    release(attr);
    MT_CHECK(status);
    return MT_OK;
}
