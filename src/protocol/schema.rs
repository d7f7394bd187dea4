//! Generates the files of `protocol/` from the types.
