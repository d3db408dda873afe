/* Parse a delimited table of numbers into float64, fast.
 *
 * parse_into(src, delimiter, ncols, empty, dst) -> rows | -1
 *   src: the table body (no header), any object with the buffer protocol (bytes, mmap slice)
 *   dst: a writable float64 buffer (a numpy array) that receives the values row-major
 *   returns the number of rows, or -1 when a cell is not a number or a row has the wrong number
 *   of cells (the caller then falls back to a slower, more tolerant parser). The GIL is released,
 *   so two halves of a file parse on two cores.
 * Empty cells become `empty`; cells may be wrapped in double quotes (W&B exports); nan/inf are read.
 * Numbers use Clinger's fast path (exact when the mantissa fits 2^53 and |exp10| <= 22), otherwise strtod,
 * so every value is the correctly rounded double, the same as float(text).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

static const double POW10[23] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
                                 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

static int lower_eq(const char *p, Py_ssize_t n, const char *word) {
    Py_ssize_t m = (Py_ssize_t)strlen(word);
    if (n != m) return 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        char c = p[i];
        if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
        if (c != word[i]) return 0;
    }
    return 1;
}

/* returns 0 on success */
static int parse_number(const char *p, Py_ssize_t n, double *out) {
    const char *s = p, *end = p + n;
    int neg = 0;
    if (s < end && (*s == '+' || *s == '-')) { neg = (*s == '-'); s++; }
    if (s == end) return -1;
    if (!(*s >= '0' && *s <= '9') && *s != '.') {
        Py_ssize_t m = end - s;
        if (lower_eq(s, m, "nan")) { *out = NAN; return 0; }
        if (lower_eq(s, m, "inf") || lower_eq(s, m, "infinity")) { *out = neg ? -INFINITY : INFINITY; return 0; }
        return -1;
    }
    uint64_t mant = 0;
    int digits = 0, exp10 = 0, any = 0, exact = 1;
    while (s < end && *s >= '0' && *s <= '9') {
        any = 1;
        if (digits < 19) { mant = mant * 10 + (uint64_t)(*s - '0'); if (mant) digits++; }
        else { exp10++; exact = 0; }
        s++;
    }
    if (s < end && *s == '.') {
        s++;
        while (s < end && *s >= '0' && *s <= '9') {
            any = 1;
            if (digits < 19) { mant = mant * 10 + (uint64_t)(*s - '0'); if (mant) digits++; exp10--; }
            else { exact = 0; }
            s++;
        }
    }
    if (!any) return -1;
    if (s < end && (*s == 'e' || *s == 'E')) {
        s++;
        int eneg = 0, e = 0, edig = 0;
        if (s < end && (*s == '+' || *s == '-')) { eneg = (*s == '-'); s++; }
        while (s < end && *s >= '0' && *s <= '9') { if (e < 100000) e = e * 10 + (*s - '0'); s++; edig++; }
        if (!edig) return -1;
        exp10 += eneg ? -e : e;
    }
    if (s != end) return -1;
    if (exact && mant < ((uint64_t)1 << 53) && exp10 >= -22 && exp10 <= 22) {
        double v = (double)mant;
        v = exp10 < 0 ? v / POW10[-exp10] : v * POW10[exp10];
        *out = neg ? -v : v;
        return 0;
    }
    /* slow but exact: strtod on a NUL-terminated copy */
    char buf[128];
    if (n >= (Py_ssize_t)sizeof(buf)) return -1;
    memcpy(buf, p, (size_t)n);
    buf[n] = 0;
    char *stop = NULL;
    double v = strtod(buf, &stop);
    if (stop != buf + n) return -1;
    *out = v;
    return 0;
}

/* Parse rows into dst (capacity cap values). Returns rows parsed, or -1 on an irregular cell/row. */
static Py_ssize_t parse_rows(const char *p, const char *end, int delim, Py_ssize_t ncols, double empty,
                             double *out, Py_ssize_t cap) {
    Py_ssize_t nvals = 0;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol) eol = end;
        const char *le = eol;
        if (le > p && le[-1] == '\r') le--;
        const char *t = p;
        while (t < le && (*t == ' ' || *t == '\t')) t++;
        if (t == le) { p = eol + 1; continue; } /* blank line */
        if (nvals + ncols > cap) return -1;
        Py_ssize_t col = 0;
        const char *c = p;
        while (1) {
            const char *ce = memchr(c, delim, (size_t)(le - c));
            if (!ce) ce = le;
            const char *a = c, *b = ce;
            while (a < b && (*a == ' ' || *a == '\t')) a++;
            while (b > a && (b[-1] == ' ' || b[-1] == '\t')) b--;
            if (b - a >= 2 && *a == '"' && b[-1] == '"') { a++; b--; }
            if (col >= ncols) return -1;
            if (a == b) out[nvals + col] = empty;
            else if (parse_number(a, b - a, &out[nvals + col]) != 0) return -1;
            col++;
            if (ce == le) break;
            c = ce + 1;
        }
        if (col != ncols) return -1;
        nvals += ncols;
        p = eol + 1;
    }
    return nvals / ncols;
}

/* parse_into(src, delimiter, ncols, empty, dst) -> rows parsed, or -1 (then use a tolerant parser) */
static PyObject *parse_into(PyObject *self, PyObject *args) {
    Py_buffer src, dst;
    int delim;
    Py_ssize_t ncols;
    double empty;
    if (!PyArg_ParseTuple(args, "y*Cndw*", &src, &delim, &ncols, &empty, &dst)) return NULL;
    Py_ssize_t rows = -1;
    if (ncols > 0 && dst.len % (Py_ssize_t)sizeof(double) == 0) {
        const char *p = (const char *)src.buf;
        Py_BEGIN_ALLOW_THREADS
        rows = parse_rows(p, p + src.len, delim, ncols, empty, (double *)dst.buf, dst.len / (Py_ssize_t)sizeof(double));
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&src);
    PyBuffer_Release(&dst);
    return PyLong_FromSsize_t(rows);
}

/* count_lines(src) -> number of '\n' bytes */
static PyObject *count_lines(PyObject *self, PyObject *args) {
    Py_buffer src;
    if (!PyArg_ParseTuple(args, "y*", &src)) return NULL;
    Py_ssize_t n = 0;
    const char *p = (const char *)src.buf, *end = p + src.len;
    Py_BEGIN_ALLOW_THREADS
    for (const char *q = p; q < end && (q = memchr(q, '\n', (size_t)(end - q))) != NULL; q++) n++;
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&src);
    return PyLong_FromSsize_t(n);
}

static PyMethodDef methods[] = {
    {"parse_into", parse_into, METH_VARARGS, "parse_into(src, delimiter, ncols, empty, dst) -> rows | -1"},
    {"count_lines", count_lines, METH_VARARGS, "count_lines(src) -> number of newlines"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_fastcsv", "Fast numeric table parser.", -1, methods};

PyMODINIT_FUNC PyInit__fastcsv(void) { return PyModule_Create(&module); }
