//! Text rules the pipeline reads and writes with, below every stage: YAML 1.1 as PyYAML
//! reads it ([`yaml`]; the block subset the templates write read faster by
//! [`yaml_block`]), Python's `str()`/`repr()` ([`pyfmt`]), Kubernetes naming rules
//! ([`names`]), CPU and memory quantities ([`quantity`]) and the `.env` substitution of a
//! compose file's text ([`dotenv`]).

pub mod dotenv;
pub mod names;
pub mod pyfmt;
pub mod quantity;
pub mod yaml;
pub mod yaml_block;
