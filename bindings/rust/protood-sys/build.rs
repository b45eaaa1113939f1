//! Link flags for libprotood, without any crate: `PROTOOD_LIB_DIR` if set (a meson build's `lib/`
//! directory, or an install's libdir), else whatever `pkg-config --libs protood` says.
use std::env;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    for var in ["PROTOOD_LIB_DIR", "PKG_CONFIG", "PKG_CONFIG_PATH", "PKG_CONFIG_LIBDIR",
                "PKG_CONFIG_SYSROOT_DIR"] {
        println!("cargo:rerun-if-env-changed={}", var);
    }

    if let Some(dir) = env::var_os("PROTOOD_LIB_DIR").filter(|d| !d.is_empty()) {
        let dir = dir.to_string_lossy().into_owned();
        println!("cargo:rustc-link-search=native={}", dir);
        println!("cargo:rustc-link-lib=dylib=protood");
        // Dependent build scripts see this as DEP_PROTOOD_LIB_DIR.
        println!("cargo:lib_dir={}", dir);
        return;
    }

    let pkg_config = env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".to_string());
    let output = Command::new(&pkg_config).args(["--libs", "protood"]).output();
    match output {
        Ok(out) if out.status.success() => {
            let flags = String::from_utf8_lossy(&out.stdout).into_owned();
            let mut linked = false;
            for flag in flags.split_whitespace() {
                if let Some(dir) = flag.strip_prefix("-L") {
                    println!("cargo:rustc-link-search=native={}", dir);
                    println!("cargo:lib_dir={}", dir);
                } else if let Some(lib) = flag.strip_prefix("-l") {
                    println!("cargo:rustc-link-lib={}", lib);
                    linked |= lib == "protood";
                }
            }
            if !linked {
                println!("cargo:rustc-link-lib=dylib=protood");
            }
        }
        Ok(out) => {
            println!("cargo:warning=`{} --libs protood` failed ({}): {}; linking -lprotood from the default \
                      paths (set PROTOOD_LIB_DIR to choose the library)",
                     pkg_config, out.status, String::from_utf8_lossy(&out.stderr).trim());
            println!("cargo:rustc-link-lib=dylib=protood");
        }
        Err(e) => {
            println!("cargo:warning=cannot run `{}` ({}); linking -lprotood from the default paths \
                      (set PROTOOD_LIB_DIR to choose the library)", pkg_config, e);
            println!("cargo:rustc-link-lib=dylib=protood");
        }
    }
}
