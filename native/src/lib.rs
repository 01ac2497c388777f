//! psi-match's native core: the RFC 9497 OPRF batch calls of `psi/backend.py`, and the
//! server's epoch entries whole (Evaluate, tag material, AES-SIV sealed label).
//!
//! The algorithms live in `h2c`, `oprf`, `seal` and `batch` (plain Rust, tested with `cargo test`);
//! the `python` feature adds the PyO3 binding below, which only converts at the edge and
//! releases the GIL for every batch.

pub mod batch;
pub mod h2c;
pub mod oprf;
pub mod seal;

#[cfg(feature = "python")]
mod bulk_py;

#[cfg(feature = "python")]
mod python {
    use pyo3::create_exception;
    use pyo3::exceptions::PyValueError;
    use pyo3::prelude::*;
    use pyo3::types::PyBytes;

    use crate::batch::{self, BatchError, Inputs};
    use crate::oprf::{ElementError, InputError};

    create_exception!(
        psi_native,
        ElementRefused,
        PyValueError,
        "A peer's element at (index, reason) was refused."
    );
    create_exception!(
        psi_native,
        InputRefused,
        PyValueError,
        "An input at (index, reason) cannot be evaluated."
    );

    fn to_py(error: BatchError) -> PyErr {
        match error {
            BatchError::Shape(message) => PyValueError::new_err(message),
            BatchError::Element(i, ElementError::Identity) => {
                ElementRefused::new_err((i, "identity"))
            }
            BatchError::Element(i, ElementError::NotCanonical) => {
                ElementRefused::new_err((i, "not_canonical"))
            }
            BatchError::Input(i, InputError::TooLong) => InputRefused::new_err((i, "too_long")),
            BatchError::Input(i, InputError::HashesToIdentity) => {
                InputRefused::new_err((i, "identity"))
            }
        }
    }

    /// Lengths arrive as one buffer of native-endian u32 (Python's `array('I')`).
    fn inputs<'a>(data: &'a [u8], lengths: &[u8]) -> Result<Inputs<'a>, BatchError> {
        if lengths.len() % 4 != 0 {
            return Err(BatchError::Shape("lengths are not whole u32"));
        }
        let lengths = lengths
            .chunks_exact(4)
            .map(|b| u32::from_ne_bytes(b.try_into().expect("4 bytes")) as usize);
        Ok(Inputs::new(data, lengths)?)
    }

    #[pyfunction]
    fn hash_to_group<'py>(
        py: Python<'py>,
        data: &[u8],
        lengths: &[u8],
    ) -> PyResult<Bound<'py, PyBytes>> {
        let out = py
            .allow_threads(|| batch::hash_to_group(&inputs(data, lengths)?))
            .map_err(to_py)?;
        Ok(PyBytes::new(py, &out))
    }

    #[pyfunction]
    fn random_scalars(py: Python<'_>, n: usize) -> Bound<'_, PyBytes> {
        PyBytes::new(py, &py.allow_threads(|| batch::random_scalars(n)))
    }

    #[pyfunction]
    fn random_elements(py: Python<'_>, n: usize) -> Bound<'_, PyBytes> {
        PyBytes::new(py, &py.allow_threads(|| batch::random_elements(n)))
    }

    #[pyfunction]
    fn blind<'py>(
        py: Python<'py>,
        data: &[u8],
        lengths: &[u8],
        blinds: &[u8],
    ) -> PyResult<Bound<'py, PyBytes>> {
        let out = py
            .allow_threads(|| batch::blind(&inputs(data, lengths)?, blinds))
            .map_err(to_py)?;
        Ok(PyBytes::new(py, &out))
    }

    #[pyfunction]
    fn blind_evaluate<'py>(
        py: Python<'py>,
        key: &[u8],
        packed: &[u8],
    ) -> PyResult<Bound<'py, PyBytes>> {
        let out = py
            .allow_threads(|| batch::blind_evaluate(key, packed))
            .map_err(to_py)?;
        Ok(PyBytes::new(py, &out))
    }

    #[pyfunction]
    fn finalize<'py>(
        py: Python<'py>,
        data: &[u8],
        lengths: &[u8],
        blinds: &[u8],
        evaluated: &[u8],
    ) -> PyResult<Bound<'py, PyBytes>> {
        let out = py
            .allow_threads(|| batch::finalize(&inputs(data, lengths)?, blinds, evaluated))
            .map_err(to_py)?;
        Ok(PyBytes::new(py, &out))
    }

    /// An epoch's entries as psi/backend.py takes them: tag materials, cardinality materials, sealed
    /// labels, label keys.
    type EntryBuffers<'py> = (
        Bound<'py, PyBytes>,
        Bound<'py, PyBytes>,
        Bound<'py, PyBytes>,
        Bound<'py, PyBytes>,
    );

    #[pyfunction]
    #[allow(clippy::too_many_arguments)] // the buffers of one call, as psi/backend.py packs them
    fn epoch_entries<'py>(
        py: Python<'py>,
        key: &[u8],
        data: &[u8],
        lengths: &[u8],
        elements: &[u8],
        labels: &[u8],
        label_lengths: &[u8],
        domain: &[u8],
        label_ad: &[u8],
    ) -> PyResult<EntryBuffers<'py>> {
        let entries = py
            .allow_threads(|| {
                batch::epoch_entries(
                    key,
                    &inputs(data, lengths)?,
                    elements,
                    &inputs(labels, label_lengths)?,
                    domain,
                    label_ad,
                )
            })
            .map_err(to_py)?;
        Ok((
            PyBytes::new(py, &entries.tag_materials),
            PyBytes::new(py, &entries.cardinality_materials),
            PyBytes::new(py, &entries.sealed_labels),
            PyBytes::new(py, &entries.label_keys),
        ))
    }

    #[pyfunction]
    fn cardinality_materials<'py>(
        py: Python<'py>,
        scalar: &[u8],
        packed: &[u8],
        domain: &[u8],
    ) -> PyResult<Bound<'py, PyBytes>> {
        let out = py
            .allow_threads(|| batch::cardinality_materials(scalar, packed, domain))
            .map_err(to_py)?;
        Ok(PyBytes::new(py, &out))
    }

    /// What the CPU gives curve25519-dalek's runtime backend selection.
    #[pyfunction]
    fn simd() -> &'static str {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            return "avx2";
        }
        "serial"
    }

    #[pymodule]
    fn psi_native(m: &Bound<'_, PyModule>) -> PyResult<()> {
        m.add("__version__", env!("CARGO_PKG_VERSION"))?;
        m.add("ElementRefused", m.py().get_type::<ElementRefused>())?;
        m.add("InputRefused", m.py().get_type::<InputRefused>())?;
        for f in [
            wrap_pyfunction!(hash_to_group, m)?,
            wrap_pyfunction!(random_scalars, m)?,
            wrap_pyfunction!(random_elements, m)?,
            wrap_pyfunction!(blind, m)?,
            wrap_pyfunction!(blind_evaluate, m)?,
            wrap_pyfunction!(finalize, m)?,
            wrap_pyfunction!(epoch_entries, m)?,
            wrap_pyfunction!(cardinality_materials, m)?,
            wrap_pyfunction!(simd, m)?,
        ] {
            m.add_function(f)?;
        }
        crate::bulk_py::register(m)?;
        Ok(())
    }
}
