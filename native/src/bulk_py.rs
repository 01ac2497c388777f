//! The PyO3 binding of bulk mode's kernels (crate `psi-bulk`, native/bulk/): `bulk_*`
//! functions over packed bytes and the `BulkLabels` class, the GIL released; u32 arrays are
//! little-endian.
//! `psi/bulk_kernels.py` wraps them behind the same interface as its Python reference.

use std::collections::HashMap;

use pyo3::create_exception;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};

use psi_bulk::{cuckoo, labels, matrix, ot, tags, BulkError, Inputs};

create_exception!(
    psi_native,
    BulkMalformed,
    PyValueError,
    "A peer's bulk-mode value the protocol does not allow."
);

fn to_py(error: BulkError) -> PyErr {
    match error {
        BulkError::Shape(message) => PyValueError::new_err(message),
        BulkError::Malformed(message) => BulkMalformed::new_err(message),
    }
}

fn u32s(bytes: &[u8]) -> PyResult<Vec<u32>> {
    if bytes.len() % 4 != 0 {
        return Err(PyValueError::new_err("not whole u32"));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
        .collect())
}

fn u32_bytes(values: &[u32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn inputs<'a>(data: &'a [u8], lengths: &[u8]) -> PyResult<Inputs<'a>> {
    Inputs::new(data, u32s(lengths)?.into_iter().map(|l| l as usize))
        .map_err(|e| to_py(e.into()))
}

#[pyfunction]
fn bulk_digests<'py>(
    py: Python<'py>,
    data: &[u8],
    lengths: &[u8],
) -> PyResult<Bound<'py, PyBytes>> {
    let keys = inputs(data, lengths)?;
    Ok(PyBytes::new(
        py,
        &py.allow_threads(|| psi_bulk::digests(&keys)),
    ))
}

#[pyfunction]
fn bulk_cuckoo<'py>(
    py: Python<'py>,
    xs: &[u8],
    seed: &[u8],
    bins: usize,
) -> PyResult<Option<Bound<'py, PyBytes>>> {
    let table = py
        .allow_threads(|| cuckoo::build(xs, seed, bins))
        .map_err(to_py)?;
    Ok(table.map(|t| PyBytes::new(py, &u32_bytes(&t))))
}

#[pyfunction]
fn bulk_ot_point<'py>(py: Python<'py>, a_wide: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
    Ok(PyBytes::new(py, &ot::sender_point(a_wide).map_err(to_py)?))
}

#[pyfunction]
fn bulk_ot_choose<'py>(
    py: Python<'py>,
    a_point: &[u8],
    b_wides: &[u8],
    choices: &[u8],
) -> PyResult<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)> {
    let (points, keys) = py
        .allow_threads(|| ot::receiver_choose(a_point, b_wides, choices))
        .map_err(to_py)?;
    Ok((PyBytes::new(py, &points), PyBytes::new(py, &keys)))
}

#[pyfunction]
fn bulk_ot_keys<'py>(
    py: Python<'py>,
    a_wide: &[u8],
    b_points: &[u8],
) -> PyResult<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)> {
    let (k0, k1) = py
        .allow_threads(|| ot::sender_keys(a_wide, b_points))
        .map_err(to_py)?;
    Ok((PyBytes::new(py, &k0), PyBytes::new(py, &k1)))
}

#[pyfunction]
fn bulk_receiver_rows<'py>(
    py: Python<'py>,
    k0: &[u8],
    k1: &[u8],
    code_key: &[u8],
    xs: &[u8],
    table: &[u8],
    r0: usize,
) -> PyResult<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)> {
    let table = u32s(table)?;
    let (u, f) = py
        .allow_threads(|| {
            let (c0, c1) = (matrix::ciphers(k0)?, matrix::ciphers(k1)?);
            matrix::receiver_rows(&c0, &c1, code_key, xs, &table, r0)
        })
        .map_err(to_py)?;
    Ok((PyBytes::new(py, &u), PyBytes::new(py, &f)))
}

#[pyfunction]
fn bulk_sender_rows<'py>(
    py: Python<'py>,
    ks: &[u8],
    s: &[u8],
    u: &[u8],
    r0: usize,
) -> PyResult<Bound<'py, PyBytes>> {
    let q = py
        .allow_threads(|| matrix::sender_rows(&matrix::ciphers(ks)?, s, u, r0))
        .map_err(to_py)?;
    Ok(PyBytes::new(py, &q))
}

#[pyfunction]
fn bulk_groups<'py>(
    py: Python<'py>,
    xs: &[u8],
) -> PyResult<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)> {
    let (distinct, group) = py.allow_threads(|| tags::groups(xs)).map_err(to_py)?;
    Ok((
        PyBytes::new(py, &distinct),
        PyBytes::new(py, &u32_bytes(&group)),
    ))
}

#[pyfunction]
fn bulk_positions<'py>(py: Python<'py>, item_keys: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
    let position = py
        .allow_threads(|| tags::positions(item_keys))
        .map_err(to_py)?;
    Ok(PyBytes::new(py, &u32_bytes(&position)))
}

#[pyfunction]
#[allow(clippy::too_many_arguments)] // the buffers of one step, as psi/bulk.py keeps them
fn bulk_sender_entries<'py>(
    py: Python<'py>,
    q: &[u8],
    s: &[u8],
    code_key: &[u8],
    hash_seed: &[u8],
    xs: &[u8],
    item_keys: &[u8],
    positions: &[u8],
    tag_len: usize,
) -> PyResult<Bound<'py, PyBytes>> {
    let positions = u32s(positions)?;
    let entries = py
        .allow_threads(|| {
            tags::sender_entries(
                q, s, code_key, hash_seed, xs, item_keys, &positions, tag_len,
            )
        })
        .map_err(to_py)?;
    Ok(PyBytes::new(py, &entries))
}

#[pyfunction]
fn bulk_group_payloads<'py>(
    py: Python<'py>,
    group: &[u8],
    groups: usize,
    data: &[u8],
    lengths: &[u8],
) -> PyResult<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)> {
    let (group, payloads) = (u32s(group)?, inputs(data, lengths)?);
    let (plains, plain_lengths) = py
        .allow_threads(|| tags::group_payloads(&group, groups, &payloads))
        .map_err(to_py)?;
    Ok((
        PyBytes::new(py, &plains),
        PyBytes::new(py, &u32_bytes(&plain_lengths)),
    ))
}

#[pyfunction]
fn bulk_seal<'py>(
    py: Python<'py>,
    item_keys: &[u8],
    data: &[u8],
    lengths: &[u8],
    order: &[u8],
) -> PyResult<Bound<'py, PyBytes>> {
    let (plains, order) = (inputs(data, lengths)?, u32s(order)?);
    let sealed = py
        .allow_threads(|| tags::seal(item_keys, &plains, &order))
        .map_err(to_py)?;
    Ok(PyBytes::new(py, &sealed))
}

/// (payloads in the chunk, hit items, payloads, payload lengths).
type Opened<'py> = (
    usize,
    Bound<'py, PyBytes>,
    Bound<'py, PyBytes>,
    Bound<'py, PyBytes>,
);

#[pyfunction]
fn bulk_open_sealed<'py>(
    py: Python<'py>,
    body: &[u8],
    first: usize,
    pending: &[u8],
) -> PyResult<Opened<'py>> {
    let (n, items, data, lengths) = py
        .allow_threads(|| tags::open_sealed(body, first, pending))
        .map_err(to_py)?;
    Ok((
        n,
        PyBytes::new(py, &u32_bytes(&items)),
        PyBytes::new(py, &data),
        PyBytes::new(py, &u32_bytes(&lengths)),
    ))
}

#[pyfunction]
fn bulk_receiver_index<'py>(
    py: Python<'py>,
    f: &[u8],
    table: &[u8],
    tag_len: usize,
) -> PyResult<Bound<'py, PyBytes>> {
    let table = u32s(table)?;
    let index = py
        .allow_threads(|| tags::receiver_index(f, &table, tag_len))
        .map_err(to_py)?;
    Ok(PyBytes::new(py, &index))
}

#[pyfunction]
fn bulk_lookup<'py>(
    py: Python<'py>,
    index: &[u8],
    entries: &[u8],
    tag_len: usize,
) -> PyResult<Bound<'py, PyBytes>> {
    let found = py
        .allow_threads(|| tags::lookup(index, entries, tag_len))
        .map_err(to_py)?;
    Ok(PyBytes::new(py, &found))
}

type Texts<'py> = Vec<Bound<'py, PyString>>;

/// A session's hit labels (`labels::Book`), with psi/tags.py's associated data and
/// psi/followup.py's info, which the caller gives once.
#[pyclass(module = "psi_native")]
struct BulkLabels {
    book: labels::Book,
    ad: Vec<u8>,
    info: Vec<u8>,
}

#[pymethods]
impl BulkLabels {
    #[new]
    fn new(ad: &[u8], info: &[u8]) -> Self {
        BulkLabels {
            book: labels::Book::default(),
            ad: ad.to_vec(),
            info: info.to_vec(),
        }
    }

    /// (per payload its label's number or u32::MAX where it did not open, follow-up keys).
    fn open<'py>(
        &mut self,
        py: Python<'py>,
        data: &[u8],
        lengths: &[u8],
    ) -> PyResult<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)> {
        let payloads = inputs(data, lengths)?;
        let BulkLabels { book, ad, info } = self;
        let (numbers, keys) = py.allow_threads(|| book.open(&payloads, ad, info));
        Ok((
            PyBytes::new(py, &u32_bytes(&numbers)),
            PyBytes::new(py, &keys),
        ))
    }

    /// (references, categories) in the order of the labels' numbers; equal categories are one
    /// str (a few are shared by many labels).
    fn decoded<'py>(&self, py: Python<'py>) -> PyResult<(Texts<'py>, Texts<'py>)> {
        let text = |part: &[u8]| {
            std::str::from_utf8(part)
                .map(|t| PyString::new(py, t))
                .map_err(|_| BulkMalformed::new_err("a label is not UTF-8"))
        };
        let labels = self.book.labels();
        let mut references = Vec::with_capacity(labels.len());
        let mut categories = Vec::with_capacity(labels.len());
        let mut shared: HashMap<&[u8], Bound<'py, PyString>> = HashMap::new();
        for (reference, category) in labels {
            references.push(text(reference)?);
            categories.push(match shared.get(category) {
                Some(known) => known.clone(),
                None => shared.entry(category).or_insert(text(category)?).clone(),
            });
        }
        Ok((references, categories))
    }
}

/// Adds the `bulk_*` functions and `BulkMalformed` to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("BulkMalformed", m.py().get_type::<BulkMalformed>())?;
    m.add_class::<BulkLabels>()?;
    for f in [
        wrap_pyfunction!(bulk_digests, m)?,
        wrap_pyfunction!(bulk_cuckoo, m)?,
        wrap_pyfunction!(bulk_ot_point, m)?,
        wrap_pyfunction!(bulk_ot_choose, m)?,
        wrap_pyfunction!(bulk_ot_keys, m)?,
        wrap_pyfunction!(bulk_receiver_rows, m)?,
        wrap_pyfunction!(bulk_sender_rows, m)?,
        wrap_pyfunction!(bulk_groups, m)?,
        wrap_pyfunction!(bulk_positions, m)?,
        wrap_pyfunction!(bulk_sender_entries, m)?,
        wrap_pyfunction!(bulk_group_payloads, m)?,
        wrap_pyfunction!(bulk_seal, m)?,
        wrap_pyfunction!(bulk_open_sealed, m)?,
        wrap_pyfunction!(bulk_receiver_index, m)?,
        wrap_pyfunction!(bulk_lookup, m)?,
    ] {
        m.add_function(f)?;
    }
    Ok(())
}
