//! Integration tests of dynsim-store on real files: h5py-written HDF5 fixtures (checked
//! against their manifest), ingest, export, bad input, and arbitrary bytes.

mod common;
mod damage;
mod fuzz;
mod hdf5_manifest;
mod ingest;
