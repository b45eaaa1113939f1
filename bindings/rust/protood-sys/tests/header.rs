//! The declarations in src/lib.rs against the C header itself: every `#define PROTOOD_*` integer
//! constant has a Rust constant of the same value (and no Rust constant lacks one), and every
//! `PROTOOD_API` function and the callback typedef have the same parameter and return types.
//!
//! The header is `$PROTOOD_HEADER` if set, else include/protood/protood.h of the source tree this
//! crate lives in; the version header is `$PROTOOD_VERSION_HEADER` (meson generates it in the
//! build directory) or, without it, meson.build's project version and soversion.
use protood_sys::*;
use std::collections::BTreeMap;
use std::path::PathBuf;

fn source_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../..")
}

fn header_text() -> String {
    let path = std::env::var_os("PROTOOD_HEADER")
        .map(PathBuf::from)
        .unwrap_or_else(|| source_root().join("include/protood/protood.h"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {}", path.display(), e))
}

/// C text without its comments (block and line).
fn strip_c_comments(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'/' && i + 1 < b.len() && b[i + 1] == b'*' {
            let end = s[i + 2..].find("*/").expect("unterminated comment");
            i += 2 + end + 2;
            out.push(' ');
        } else if b[i] == b'/' && i + 1 < b.len() && b[i + 1] == b'/' {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
}

/// `#define PROTOOD_NAME <integer>` lines.
fn integer_defines(text: &str) -> BTreeMap<String, i64> {
    let mut map = BTreeMap::new();
    for line in strip_c_comments(text).lines() {
        let mut it = line.split_whitespace();
        if it.next() != Some("#define") {
            continue;
        }
        let (name, value) = match (it.next(), it.next()) {
            (Some(n), Some(v)) => (n, v),
            _ => continue,
        };
        if !name.starts_with("PROTOOD_") {
            continue;
        }
        if let Ok(v) = value.parse::<i64>() {
            map.insert(name.to_string(), v);
        }
    }
    map
}

macro_rules! table {
    ($($name:ident),* $(,)?) => {{
        let mut m = BTreeMap::new();
        $( m.insert(stringify!($name).to_string(), $name as i64); )*
        m
    }};
}

#[test]
fn every_header_constant_is_bound_with_its_value() {
    let header = integer_defines(&header_text());
    assert!(header.len() >= 40, "parsed only {} constants from the header", header.len());
    let rust = table!(
        PROTOOD_OK, PROTOOD_E_INVALID_ARG, PROTOOD_E_NOMEM, PROTOOD_E_SHAPE, PROTOOD_E_STATE,
        PROTOOD_E_NONFINITE, PROTOOD_E_LABEL, PROTOOD_E_IO, PROTOOD_E_FORMAT, PROTOOD_E_CALLBACK,
        PROTOOD_E_UNSUPPORTED, PROTOOD_E_INTERNAL,
        PROTOOD_BANK_MOMENTUM, PROTOOD_BANK_TEMPERATURE, PROTOOD_BANK_SINKHORN_EPSILON,
        PROTOOD_BANK_SINKHORN_ITERS, PROTOOD_BANK_TOPK, PROTOOD_BANK_LAMBDA_PCON,
        PROTOOD_BANK_PCON_TEMPERATURE, PROTOOD_BANK_COMP_WEIGHT, PROTOOD_BANK_DIS_BASE_TEMPERATURE,
        PROTOOD_BANK_COMP_BASE_TEMPERATURE,
        PROTOOD_INIT_SPHERE, PROTOOD_INIT_POSITIVE,
        PROTOOD_POSITIVE_IN, PROTOOD_POSITIVE_OUT,
        PROTOOD_FPR_ROC, PROTOOD_FPR_KNN, PROTOOD_FPR_PERCENTILE, PROTOOD_FPR_OOD_POSITIVE,
        PROTOOD_DTYPE_F32, PROTOOD_DTYPE_F64, PROTOOD_DTYPE_F16, PROTOOD_DTYPE_I32, PROTOOD_DTYPE_I64,
        PROTOOD_SCORER_KNN, PROTOOD_SCORER_MAHALANOBIS, PROTOOD_SCORER_SSD, PROTOOD_SCORER_PROTOTYPE,
        PROTOOD_SCORER_K, PROTOOD_SCORER_NORMALIZE,
    );
    let missing: Vec<_> = header.keys().filter(|k| !rust.contains_key(*k)).collect();
    assert!(missing.is_empty(), "constants of protood.h without a Rust binding: {:?}", missing);
    let extra: Vec<_> = rust.keys().filter(|k| !header.contains_key(*k)).collect();
    assert!(extra.is_empty(), "Rust constants not in protood.h: {:?}", extra);
    for (name, value) in &header {
        assert_eq!(rust[name], *value, "{}", name);
    }
}

#[test]
fn version_constants_match_the_build() {
    let (major, minor, patch, abi) = match std::env::var_os("PROTOOD_VERSION_HEADER") {
        Some(p) => {
            let text = std::fs::read_to_string(&p).expect("PROTOOD_VERSION_HEADER unreadable");
            let d = integer_defines(&text);
            assert!(text.contains(&format!("#define PROTOOD_VERSION_STRING \"{}\"", PROTOOD_VERSION_STRING)),
                    "version string differs from {}", PROTOOD_VERSION_STRING);
            (d["PROTOOD_VERSION_MAJOR"], d["PROTOOD_VERSION_MINOR"], d["PROTOOD_VERSION_PATCH"],
             d["PROTOOD_ABI_VERSION"])
        }
        None => {
            // meson.build: `version: '0.1.0',` and `protood_soversion = '0'`.
            let text = std::fs::read_to_string(source_root().join("meson.build")).unwrap();
            let quoted_after = |key: &str| -> String {
                let at = text.find(key).unwrap_or_else(|| panic!("{} not in meson.build", key));
                let rest = &text[at + key.len()..];
                let start = rest.find('\'').unwrap() + 1;
                let len = rest[start..].find('\'').unwrap();
                rest[start..start + len].to_string()
            };
            let version = quoted_after("version:");
            assert_eq!(version, PROTOOD_VERSION_STRING);
            let parts: Vec<i64> = version.split('.').map(|p| p.parse().unwrap()).collect();
            let abi: i64 = quoted_after("protood_soversion =").parse().unwrap();
            (parts[0], parts[1], parts[2], abi)
        }
    };
    assert_eq!(major, PROTOOD_VERSION_MAJOR as i64);
    assert_eq!(minor, PROTOOD_VERSION_MINOR as i64);
    assert_eq!(patch, PROTOOD_VERSION_PATCH as i64);
    assert_eq!(abi, PROTOOD_ABI_VERSION as i64);
    assert_eq!(PROTOOD_VERSION_NUMBER as i64, major * 10000 + minor * 100 + patch);
}

/// A C declaration's type ("const float *", "protood_bank **") in Rust spelling.
fn c_type_to_rust(c: &str) -> String {
    let stars = c.matches('*').count();
    let base_text = c.replace('*', " ");
    let mut is_const = false;
    let mut base = None;
    for tok in base_text.split_whitespace() {
        if tok == "const" {
            is_const = true;
        } else {
            assert!(base.is_none(), "cannot parse C type {:?}", c);
            base = Some(tok);
        }
    }
    let base = match base.expect("empty C type") {
        "int32_t" => "i32",
        "int64_t" => "i64",
        "uint32_t" => "u32",
        "uint64_t" => "u64",
        "size_t" => "usize",
        "float" => "f32",
        "double" => "f64",
        "char" => "c_char",
        "void" => "c_void",
        other @ ("protood_status" | "protood_feature_fn" | "protood_allreduce_fn" | "protood_bank"
        | "protood_scorer") => other,
        other => panic!("no Rust mapping for C type {:?}", other),
    };
    let mut s = String::new();
    for level in 0..stars {
        // The pointee's const applies to the innermost pointer; outer levels are mutable.
        s.push_str(if level == stars - 1 && is_const { "*const " } else { "*mut " });
    }
    s.push_str(base);
    s
}

/// Split "TYPE name" into (type, name); the name is the last identifier.
fn split_decl(decl: &str) -> (String, String) {
    let decl = decl.trim();
    let name_start = decl
        .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .map(|i| i + 1)
        .unwrap_or(0);
    (decl[..name_start].trim().to_string(), decl[name_start..].to_string())
}

type Signature = (Vec<String>, String); // parameter types, return type ("" = none)

fn c_params(params: &str) -> Vec<String> {
    let params = params.trim();
    if params == "void" || params.is_empty() {
        return Vec::new();
    }
    params.split(',').map(|p| c_type_to_rust(&split_decl(p).0)).collect()
}

fn header_functions(text: &str) -> BTreeMap<String, Signature> {
    let code = strip_c_comments(text);
    let mut map = BTreeMap::new();
    let mut rest = code.as_str();
    // Declarations start a line with PROTOOD_API (the macro's own #define does not).
    while let Some(at) = rest.find("\nPROTOOD_API ") {
        let decl_start = at + "\nPROTOOD_API ".len();
        let end = rest[decl_start..].find(';').unwrap() + decl_start;
        let decl = &rest[decl_start..end];
        rest = &rest[end..];
        let open = decl.find('(').unwrap();
        let close = decl.rfind(')').unwrap();
        let (ret, name) = split_decl(&decl[..open]);
        let ret = if ret == "void" { String::new() } else { c_type_to_rust(&ret) };
        map.insert(name, (c_params(&decl[open + 1..close]), ret));
    }
    map
}

fn normalise_rust_type(t: &str) -> String {
    t.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn rust_params(params: &str) -> Vec<String> {
    params
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| normalise_rust_type(p.split_once(':').expect("param without type").1))
        .collect()
}

fn rust_source() -> String {
    let src = std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    // Drop line comments so that text in them cannot be mistaken for code.
    src.lines().map(|l| l.split("//").next().unwrap()).collect::<Vec<_>>().join("\n")
}

fn rust_functions() -> BTreeMap<String, Signature> {
    let src = rust_source();
    let start = src.find("extern \"C\" {").expect("no extern block") + "extern \"C\" {".len();
    let end = start + src[start..].find("\n}").expect("extern block not closed");
    let mut map = BTreeMap::new();
    for decl in src[start..end].split(';').map(str::trim).filter(|d| !d.is_empty()) {
        let decl = decl.strip_prefix("pub fn ").unwrap_or_else(|| panic!("unexpected item {:?}", decl));
        let open = decl.find('(').unwrap();
        let close = decl.rfind(')').unwrap();
        let ret = decl[close + 1..].trim().strip_prefix("->").map(normalise_rust_type).unwrap_or_default();
        map.insert(decl[..open].trim().to_string(), (rust_params(&decl[open + 1..close]), ret));
    }
    map
}

#[test]
fn every_header_function_is_declared_with_its_types() {
    let header = header_functions(&header_text());
    let rust = rust_functions();
    assert!(header.len() >= 45, "parsed only {} functions from the header", header.len());
    let missing: Vec<_> = header.keys().filter(|k| !rust.contains_key(*k)).collect();
    assert!(missing.is_empty(), "functions of protood.h not declared in Rust: {:?}", missing);
    let extra: Vec<_> = rust.keys().filter(|k| !header.contains_key(*k)).collect();
    assert!(extra.is_empty(), "Rust declarations not in protood.h: {:?}", extra);
    for (name, sig) in &header {
        assert_eq!(&rust[name], sig, "{}: Rust (params, return) vs header", name);
    }
}

#[test]
fn callback_typedef_matches() {
    let code = strip_c_comments(&header_text());
    let at = code.find("(*protood_feature_fn)").expect("callback typedef not found");
    let start = code[..at].rfind("typedef").unwrap() + "typedef".len();
    let ret = c_type_to_rust(&code[start..at]);
    let params_start = at + "(*protood_feature_fn)".len();
    let params_end = params_start + code[params_start..].find(';').unwrap();
    let params = code[params_start..params_end].trim();
    let c_sig = (c_params(&params[1..params.len() - 1]), ret);

    let src = rust_source();
    let at = src.find("pub type protood_feature_fn").expect("no protood_feature_fn in lib.rs");
    let decl = &src[at..at + src[at..].find(";").unwrap()];
    assert!(decl.contains("Option<") && decl.contains("unsafe extern \"C\" fn("), "{}", decl);
    let open = decl.find("fn(").unwrap() + 2;
    let close = decl.rfind(')').unwrap();
    let ret = decl[close + 1..].trim().trim_end_matches(|c| c == '>' || c == ',' || char::is_whitespace(c));
    let ret = normalise_rust_type(ret.strip_prefix("->").unwrap());
    assert_eq!((rust_params(&decl[open + 1..close]), ret), c_sig);
}

#[test]
fn type_mapping_is_what_the_test_assumes() {
    // The mapping itself, on the shapes that occur in the header.
    assert_eq!(c_type_to_rust("const float *"), "*const f32");
    assert_eq!(c_type_to_rust("protood_bank **"), "*mut *mut protood_bank");
    assert_eq!(c_type_to_rust("const char *"), "*const c_char");
    assert_eq!(c_type_to_rust("size_t"), "usize");
    assert_eq!(std::mem::size_of::<protood_feature_fn>(), std::mem::size_of::<usize>());
}
