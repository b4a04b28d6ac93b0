// The one piece of RE2 Gatehouse needs: does Envoy's regex engine accept a pattern, and how
// large is its compiled program (Envoy refuses programs above `re2.max_program_size.error_level`).
// Compiled with the options Envoy uses (RE2::Quiet), so syntax and size are RE2's own.

#include <re2/re2.h>

#include <cstddef>
#include <cstring>
#include <string>

extern "C" {

// The program size of `pattern`, or -1 when RE2 rejects it; then up to `cap - 1` bytes of
// RE2's error go to `error` (NUL-terminated).
long gatehouse_re2_program_size(const char* pattern, size_t len, char* error, size_t cap) {
  re2::RE2 re(re2::StringPiece(pattern, len), re2::RE2::Quiet);
  if (!re.ok()) {
    if (cap > 0) {
      const std::string& e = re.error();
      size_t n = e.size() < cap - 1 ? e.size() : cap - 1;
      std::memcpy(error, e.data(), n);
      error[n] = '\0';
    }
    return -1;
  }
  return re.ProgramSize();
}

}  // extern "C"
