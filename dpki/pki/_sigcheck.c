/*
 * dpki.pki._sigcheck: verify many ECDSA certificate signatures in one call, without the GIL.
 *
 * The indexer links every new certificate to the issuer whose key signed it. One P-256
 * verification costs ~43 us in OpenSSL; a thousand certificates a range, verified one Python
 * call at a time, keep one core busy while the interpreter lock makes every other thread of
 * the process wait its turn at each call. verify_many() takes the whole list, releases the
 * lock once, verifies them all with OpenSSL's EVP API on as many threads as asked and hands
 * back one answer each. A Verifier goes further: its own threads (which never take the lock)
 * verify whatever jobs are submitted to it while the caller goes on parsing the next ones.
 *
 * It only checks what dpki.pki.keys.verify_with_key would check with cryptography for an EC
 * key and an ECDSA signature algorithm; the Python side decides which certificates come here
 * (dpki.pki.bulk.ecdsa_job, dpki.pki.issuers.IssuerKeys.plan) and takes every answer that
 * is not a plain yes or no back to cryptography. Nothing here parses certificates: the key
 * is a SubjectPublicKeyInfo that cryptography encoded, the data the TBSCertificate as the
 * certificate encodes it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pthread.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#define VERIFIED 1
#define NOT_VERIFIED 0
#define UNDECIDED -1 /* an error, an unknown digest: the caller asks cryptography */

typedef struct {
    const unsigned char *key; /* DER SubjectPublicKeyInfo */
    Py_ssize_t key_len;
    const EVP_MD *digest;
    const unsigned char *data;
    Py_ssize_t data_len;
    const unsigned char *signature;
    Py_ssize_t signature_len;
    int result;
} job_t;

/* Verify every job in order. Runs without the GIL: touches no Python object. */
static void verify_jobs(job_t *jobs, Py_ssize_t n)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY *key = NULL; /* the last key decoded: consecutive jobs usually share it */
    const unsigned char *key_der = NULL;
    Py_ssize_t key_len = 0;

    for (Py_ssize_t i = 0; i < n; i++) {
        job_t *job = &jobs[i];
        job->result = UNDECIDED;
        if (ctx == NULL || job->digest == NULL)
            continue;
        if (key == NULL || key_len != job->key_len || memcmp(key_der, job->key, key_len) != 0) {
            const unsigned char *p = job->key;
            EVP_PKEY_free(key);
            key = d2i_PUBKEY(NULL, &p, (long)job->key_len);
            key_der = job->key;
            key_len = job->key_len;
            if (key == NULL || p != job->key + job->key_len || EVP_PKEY_get_base_id(key) != EVP_PKEY_EC) {
                EVP_PKEY_free(key);
                key = NULL;
                continue;
            }
        }
        if (EVP_MD_CTX_reset(ctx) != 1 || EVP_DigestVerifyInit(ctx, NULL, job->digest, NULL, key) != 1)
            continue;
        int verified = EVP_DigestVerify(ctx, job->signature, (size_t)job->signature_len, job->data,
                                        (size_t)job->data_len);
        job->result = verified == 1 ? VERIFIED : verified == 0 ? NOT_VERIFIED : UNDECIDED;
    }
    EVP_PKEY_free(key);
    EVP_MD_CTX_free(ctx);
    ERR_clear_error(); /* this thread's queue: failures are answers here, not errors */
}

typedef struct {
    job_t *jobs;
    Py_ssize_t n;
} part_t;

static void *verify_part(void *arg)
{
    part_t *part = arg;
    verify_jobs(part->jobs, part->n);
    return NULL;
}

/* Verify the jobs on `threads` threads (this one and threads - 1 helpers), each its share.
   A helper that cannot be started leaves its share to this thread. */
static void verify_on_threads(job_t *jobs, Py_ssize_t n, int threads)
{
    enum { MOST = 8 };
    pthread_t helpers[MOST];
    part_t parts[MOST];
    int started[MOST] = {0};
    if (threads > MOST)
        threads = MOST;
    if (threads < 1 || n < threads)
        threads = 1;
    Py_ssize_t share = (n + threads - 1) / threads;
    for (int t = 1; t < threads; t++) {
        Py_ssize_t from = t * share, to = from + share < n ? from + share : n;
        parts[t].jobs = jobs + from;
        parts[t].n = to > from ? to - from : 0;
        started[t] = pthread_create(&helpers[t], NULL, verify_part, &parts[t]) == 0;
    }
    verify_jobs(jobs, share < n ? share : n);
    for (int t = 1; t < threads; t++) {
        if (started[t])
            pthread_join(helpers[t], NULL);
        else
            verify_jobs(parts[t].jobs, parts[t].n);
    }
}

static int read_job(PyObject *item, job_t *job)
{
    if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 4) {
        PyErr_SetString(PyExc_TypeError, "each job is a tuple (key, digest, data, signature)");
        return -1;
    }
    PyObject *key = PyTuple_GET_ITEM(item, 0), *digest = PyTuple_GET_ITEM(item, 1);
    PyObject *data = PyTuple_GET_ITEM(item, 2), *signature = PyTuple_GET_ITEM(item, 3);
    if (!PyBytes_Check(key) || !PyUnicode_Check(digest) || !PyBytes_Check(data) ||
        !PyBytes_Check(signature)) {
        PyErr_SetString(PyExc_TypeError, "each job is (bytes, str, bytes, bytes)");
        return -1;
    }
    const char *name = PyUnicode_AsUTF8(digest);
    if (name == NULL)
        return -1;
    job->key = (const unsigned char *)PyBytes_AS_STRING(key);
    job->key_len = PyBytes_GET_SIZE(key);
    job->digest = EVP_get_digestbyname(name);
    job->data = (const unsigned char *)PyBytes_AS_STRING(data);
    job->data_len = PyBytes_GET_SIZE(data);
    job->signature = (const unsigned char *)PyBytes_AS_STRING(signature);
    job->signature_len = PyBytes_GET_SIZE(signature);
    return 0;
}

PyDoc_STRVAR(verify_many_doc,
"verify_many(jobs, threads=1) -> list\n\n"
"Verify ECDSA signatures: each job is (SubjectPublicKeyInfo DER, digest name such as\n"
"'sha256', signed bytes, DER signature). Returns True (verified), False (does not verify)\n"
"or None (undecided: not an EC key, an unknown digest, an OpenSSL error) for each, in order.\n"
"The interpreter lock is released while OpenSSL works, on `threads` threads (at most 8).");

static PyObject *verify_many(PyObject *module, PyObject *args, PyObject *kwargs)
{
    (void)module;
    static char *keywords[] = {"jobs", "threads", NULL};
    PyObject *arg;
    int threads = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|i:verify_many", keywords, &arg, &threads))
        return NULL;
    /* a list or tuple the caller made: held (with every bytes object in it) until the end */
    PyObject *seq = PySequence_Fast(arg, "jobs must be a list or a tuple");
    if (seq == NULL)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    job_t *jobs = PyMem_Calloc(n > 0 ? (size_t)n : 1, sizeof(job_t));
    PyObject *out = NULL;
    if (jobs == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++)
        if (read_job(PySequence_Fast_GET_ITEM(seq, i), &jobs[i]) < 0)
            goto done;
    Py_BEGIN_ALLOW_THREADS
    verify_on_threads(jobs, n, threads);
    Py_END_ALLOW_THREADS
    out = PyList_New(n);
    if (out == NULL)
        goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *answer = jobs[i].result == VERIFIED       ? Py_True
                           : jobs[i].result == NOT_VERIFIED ? Py_False
                                                            : Py_None;
        Py_INCREF(answer);
        PyList_SET_ITEM(out, i, answer);
    }
done:
    PyMem_Free(jobs);
    Py_DECREF(seq);
    return out;
}

/* ------------------------------------------------------------------ Verifier */

/* jobs verified at a time by one worker: a key is decoded once per grain */
#define GRAIN 32

typedef struct block {
    job_t *jobs;
    Py_ssize_t n;
    Py_ssize_t taken; /* handed to workers */
    struct block *next;
} block_t;

typedef struct {
    PyObject_HEAD
    pthread_mutex_t lock;
    pthread_cond_t work;     /* jobs were submitted, or the verifier closes */
    pthread_cond_t progress; /* a worker finished some jobs */
    block_t *first, *last;
    block_t *cursor;         /* the first block that may have jobs nobody took */
    Py_ssize_t submitted, completed;
    PyObject *held; /* the submitted sequences: they keep the bytes the jobs point into */
    pthread_t threads[8];
    int nthreads;
    int closing;
    int ready; /* lock and conditions initialised */
} Verifier;

/* With the lock held: take up to GRAIN jobs nobody took, verify them without the lock and
   count them done. Returns 0 when there was nothing to take. */
static int verify_some(Verifier *v)
{
    while (v->cursor != NULL && v->cursor->taken == v->cursor->n)
        v->cursor = v->cursor->next;
    if (v->cursor == NULL)
        return 0;
    block_t *b = v->cursor;
    Py_ssize_t from = b->taken, k = b->n - from < GRAIN ? b->n - from : GRAIN;
    b->taken += k;
    pthread_mutex_unlock(&v->lock);
    verify_jobs(b->jobs + from, k);
    pthread_mutex_lock(&v->lock);
    v->completed += k;
    pthread_cond_broadcast(&v->progress);
    return 1;
}

static void *worker(void *arg)
{
    Verifier *v = arg;
    pthread_mutex_lock(&v->lock);
    for (;;) {
        if (v->closing) /* what nobody took yet is dropped */
            break;
        if (verify_some(v))
            continue;
        pthread_cond_wait(&v->work, &v->lock);
    }
    pthread_mutex_unlock(&v->lock);
    return NULL;
}

/* Stop and join the workers (after they finish what they took), free the jobs. */
static void verifier_close_all(Verifier *v)
{
    if (!v->ready)
        return;
    pthread_mutex_lock(&v->lock);
    v->closing = 1;
    pthread_cond_broadcast(&v->work);
    pthread_mutex_unlock(&v->lock);
    int n = v->nthreads;
    v->nthreads = 0;
    if (n > 0) {
        Py_BEGIN_ALLOW_THREADS
        for (int t = 0; t < n; t++)
            pthread_join(v->threads[t], NULL);
        Py_END_ALLOW_THREADS
    }
    /* no worker runs now: the blocks are ours alone */
    for (block_t *b = v->first; b != NULL;) {
        block_t *next = b->next;
        PyMem_Free(b->jobs);
        PyMem_Free(b);
        b = next;
    }
    v->first = v->last = v->cursor = NULL;
    Py_CLEAR(v->held);
}

static int Verifier_init(Verifier *v, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"threads", NULL};
    int threads = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|i:Verifier", keywords, &threads))
        return -1;
    if (v->ready) {
        PyErr_SetString(PyExc_RuntimeError, "a Verifier is initialised once");
        return -1;
    }
    if (threads < 1 || threads > 8) {
        PyErr_SetString(PyExc_ValueError, "threads must be 1 to 8");
        return -1;
    }
    v->held = PyList_New(0);
    if (v->held == NULL)
        return -1;
    if (pthread_mutex_init(&v->lock, NULL) != 0 || pthread_cond_init(&v->work, NULL) != 0 ||
        pthread_cond_init(&v->progress, NULL) != 0) {
        PyErr_SetString(PyExc_OSError, "cannot initialise the verifier's lock");
        return -1;
    }
    v->ready = 1;
    for (int t = 0; t < threads; t++) {
        if (pthread_create(&v->threads[v->nthreads], NULL, worker, v) == 0)
            v->nthreads++;
    }
    if (v->nthreads == 0) {
        PyErr_SetString(PyExc_OSError, "cannot start a verifier thread");
        return -1;
    }
    return 0;
}

static void Verifier_dealloc(Verifier *v)
{
    verifier_close_all(v);
    if (v->ready) {
        pthread_cond_destroy(&v->progress);
        pthread_cond_destroy(&v->work);
        pthread_mutex_destroy(&v->lock);
    }
    Py_XDECREF(v->held);
    Py_TYPE(v)->tp_free((PyObject *)v);
}

static PyObject *Verifier_submit(Verifier *v, PyObject *arg)
{
    if (!v->ready || v->closing) {
        PyErr_SetString(PyExc_ValueError, "the verifier is closed");
        return NULL;
    }
    PyObject *seq = PySequence_Fast(arg, "jobs must be a list or a tuple");
    if (seq == NULL)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    block_t *b = PyMem_Calloc(1, sizeof(block_t));
    job_t *jobs = PyMem_Calloc(n > 0 ? (size_t)n : 1, sizeof(job_t));
    if (b == NULL || jobs == NULL) {
        PyMem_Free(b);
        PyMem_Free(jobs);
        Py_DECREF(seq);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (read_job(PySequence_Fast_GET_ITEM(seq, i), &jobs[i]) < 0) {
            PyMem_Free(b);
            PyMem_Free(jobs);
            Py_DECREF(seq);
            return NULL;
        }
    }
    if (PyList_Append(v->held, seq) < 0) {
        PyMem_Free(b);
        PyMem_Free(jobs);
        Py_DECREF(seq);
        return NULL;
    }
    Py_DECREF(seq); /* v->held has it */
    b->jobs = jobs;
    b->n = n;
    pthread_mutex_lock(&v->lock);
    if (v->last != NULL)
        v->last->next = b;
    else
        v->first = b;
    v->last = b;
    if (v->cursor == NULL)
        v->cursor = b;
    v->submitted += n;
    pthread_cond_broadcast(&v->work);
    pthread_mutex_unlock(&v->lock);
    Py_RETURN_NONE;
}

static PyObject *Verifier_answers(Verifier *v, PyObject *unused)
{
    (void)unused;
    if (!v->ready || v->closing) {
        PyErr_SetString(PyExc_ValueError, "the verifier is closed");
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    pthread_mutex_lock(&v->lock);
    for (;;) { /* this thread verifies too, until nothing is left to take */
        if (verify_some(v))
            continue;
        if (v->completed >= v->submitted)
            break;
        pthread_cond_wait(&v->progress, &v->lock);
    }
    pthread_mutex_unlock(&v->lock);
    Py_END_ALLOW_THREADS
    PyObject *out = PyList_New(v->submitted);
    if (out == NULL)
        return NULL;
    Py_ssize_t i = 0;
    for (block_t *b = v->first; b != NULL; b = b->next) {
        for (Py_ssize_t j = 0; j < b->n; j++, i++) {
            int r = b->jobs[j].result;
            PyObject *answer = r == VERIFIED ? Py_True : r == NOT_VERIFIED ? Py_False : Py_None;
            Py_INCREF(answer);
            PyList_SET_ITEM(out, i, answer);
        }
    }
    return out;
}

static PyObject *Verifier_close(Verifier *v, PyObject *unused)
{
    (void)unused;
    verifier_close_all(v);
    Py_RETURN_NONE;
}

static PyMethodDef Verifier_methods[] = {
    {"submit", (PyCFunction)Verifier_submit, METH_O,
     "submit(jobs): have the jobs (as verify_many's) verified by the verifier's threads."},
    {"answers", (PyCFunction)Verifier_answers, METH_NOARGS,
     "answers() -> list: verify what is left (this thread helps) and wait for every job\n"
     "submitted; their answers in submission order."},
    {"close", (PyCFunction)Verifier_close, METH_NOARGS,
     "close(): stop the threads (after the jobs they took) and forget the jobs."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject VerifierType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "dpki.pki._sigcheck.Verifier",
    .tp_doc = "Verifier(threads=1): threads that verify submitted jobs without the GIL.",
    .tp_basicsize = sizeof(Verifier),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Verifier_init,
    .tp_dealloc = (destructor)Verifier_dealloc,
    .tp_methods = Verifier_methods,
};

static PyMethodDef methods[] = {
    {"verify_many", (PyCFunction)(void (*)(void))verify_many, METH_VARARGS | METH_KEYWORDS,
     verify_many_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    "dpki.pki._sigcheck",
    "ECDSA signatures verified in bulk by OpenSSL, without the GIL (see verify_many).",
    -1,
    methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC PyInit__sigcheck(void)
{
    if (PyType_Ready(&VerifierType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&VerifierType);
    if (PyModule_AddObject(m, "Verifier", (PyObject *)&VerifierType) < 0) {
        Py_DECREF(&VerifierType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
