//! Text rules the pipeline reads and writes with, below every stage: YAML 1.1 as PyYAML
//! reads it ([`yaml`]), Python's `str()`/`repr()` ([`pyfmt`]), Kubernetes naming rules
//! ([`names`]) and the `.env` substitution of a compose file's text ([`dotenv`]).

pub mod dotenv;
pub mod names;
pub mod pyfmt;
pub mod yaml;
