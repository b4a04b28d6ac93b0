//! RE2, the regex engine Envoy runs, through `native/re2_shim.cc` (linked by build.rs).

use std::ffi::{c_char, c_long};

unsafe extern "C" {
    fn gatehouse_re2_program_size(
        pattern: *const c_char,
        len: usize,
        error: *mut c_char,
        cap: usize,
    ) -> c_long;
}

/// RE2's reason for refusing a pattern.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Re2Error(pub String);

/// The size of `pattern`'s compiled RE2 program (what Envoy compares with
/// `re2.max_program_size.error_level`), or RE2's reason for refusing it.
pub fn program_size(pattern: &str) -> Result<usize, Re2Error> {
    let mut error = [0u8; 256];
    // SAFETY: the shim reads `len` bytes of `pattern` (any bytes, NUL included: RE2 takes a
    // StringPiece) and writes at most `error.len()` bytes, NUL-terminated, into `error`.
    let size = unsafe {
        gatehouse_re2_program_size(
            pattern.as_ptr().cast(),
            pattern.len(),
            error.as_mut_ptr().cast(),
            error.len(),
        )
    };
    usize::try_from(size).map_err(|_| {
        let end = error.iter().position(|b| *b == 0).unwrap_or(error.len());
        Re2Error(String::from_utf8_lossy(&error[..end]).into_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::{Re2Error, program_size};

    /// Sizes Envoy 1.40 reported in its own rejections ("RE2 program size of N > max program
    /// size of 100"): Debian's RE2 must agree, or the limit Gatehouse enforces means nothing.
    #[test]
    fn program_sizes_agree_with_envoys_re2() {
        let a97 = "a".repeat(97);
        let x49 = "/x".repeat(49);
        let cases: &[(&str, usize)] = &[
            ("/a{1000}", 1005),
            (&a97, 101),
            (&x49, 102),
            ("/(ab|cd|ef|gh|ij|kl|mn|op){3,10}", 192),
        ];
        for (pattern, envoy) in cases {
            assert_eq!(program_size(pattern), Ok(*envoy), "{pattern}");
        }
    }

    /// RE2's syntax, not Rust's: each of these differs between the two engines.
    #[test]
    fn syntax_is_re2s() {
        for ok in ["[[:alpha:]]", "\\pL", "[a&&b]", "\\<", "(?P<n>a)", "\\C"] {
            assert!(program_size(ok).is_ok(), "RE2 accepts {ok}");
        }
        for bad in ["a**", "\\Z", "/a{1001}", "(", "[z-a]", "\\8"] {
            assert!(program_size(bad).is_err(), "RE2 rejects {bad}");
        }
        // Envoy's newer RE2 takes `(?<name>…)`; Debian's (2022) does not. Gatehouse is the
        // stricter of the two here, the safe direction.
        assert!(program_size("(?<n>a)").is_err());
        assert_eq!(
            program_size("a**"),
            Err(Re2Error("bad repetition operator: **".to_string()))
        );
    }
}
