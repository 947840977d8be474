//! Quality filters for generated question/answer pairs: each rule a named type, composed into a pipeline that keeps every rejection with its reason.
