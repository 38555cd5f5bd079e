// UTF-8 helpers, Unicode properties and NFC (ICU), and the PCRE2 regex used by pre-tokenizers.
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <unicode/uchar.h>
#include <unicode/unorm2.h>
#include <unicode/ustring.h>

#include "tokenizer_internal.h"

namespace sdmlm::tok {

int utf8_len(unsigned char lead) {
  if (lead < 0x80) return 1;
  if ((lead & 0xE0) == 0xC0) return 2;
  if ((lead & 0xF0) == 0xE0) return 3;
  if ((lead & 0xF8) == 0xF0) return 4;
  return 1;
}

char32_t utf8_at(std::string_view s, size_t pos) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data()) + pos;
  int n = utf8_len(p[0]);
  if (pos + n > s.size()) return p[0];
  if (n == 1) return p[0];
  char32_t cp = p[0] & (0x7F >> n);
  for (int i = 1; i < n; ++i) cp = (cp << 6) | (p[i] & 0x3F);
  return cp;
}

void utf8_append(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

namespace {

// Length of the valid UTF-8 sequence at `i`, or -(bytes of its longest valid prefix, ≥ 1).
int utf8_sequence(std::string_view b, size_t i) {
  auto at = [&](size_t k) -> int { return k < b.size() ? static_cast<unsigned char>(b[k]) : -1; };
  int c = at(i);
  if (c < 0x80) return 1;
  int need = 0, lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) {
    need = 1;
  } else if (c >= 0xE0 && c <= 0xEF) {
    need = 2;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    need = 3;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return -1;
  }
  for (int k = 1; k <= need; ++k) {
    int x = at(i + k);
    bool ok = k == 1 ? (x >= lo && x <= hi) : (x >= 0x80 && x <= 0xBF);
    if (!ok) return -k;
  }
  return need + 1;
}

}  // namespace

std::string utf8_lossy(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  size_t i = 0;
  while (i < bytes.size()) {
    int n = utf8_sequence(bytes, i);
    if (n > 0) {
      out.append(bytes.substr(i, n));
      i += n;
    } else {
      out += "\xEF\xBF\xBD";
      i += -n;
    }
  }
  return out;
}

bool utf8_valid(std::string_view bytes) {
  for (size_t i = 0; i < bytes.size();) {
    int n = utf8_sequence(bytes, i);
    if (n < 0) return false;
    i += n;
  }
  return true;
}

bool is_whitespace(char32_t cp) { return u_hasBinaryProperty(static_cast<UChar32>(cp), UCHAR_WHITE_SPACE); }

bool is_alphanumeric(char32_t cp) {
  if (u_hasBinaryProperty(static_cast<UChar32>(cp), UCHAR_ALPHABETIC)) return true;
  int8_t type = u_charType(static_cast<UChar32>(cp));
  return type == U_DECIMAL_DIGIT_NUMBER || type == U_LETTER_NUMBER || type == U_OTHER_NUMBER;
}

namespace {

// `text` (valid UTF-8) through an ICU normaliser: UTF-8 → UTF-16 → normalised → UTF-8.
std::string icu_normalize(std::string_view text, const UNormalizer2* norm, UErrorCode status, const char* form) {
  std::u16string wide(text.size() + 1, u'\0');
  int32_t wide_len = 0;
  u_strFromUTF8(wide.data(), static_cast<int32_t>(wide.size()), &wide_len, text.data(),
                static_cast<int32_t>(text.size()), &status);
  std::u16string normal(wide_len * 4 + 16, u'\0');  // NFKC and case folding may expand ×3+
  int32_t normal_len =
      unorm2_normalize(norm, wide.data(), wide_len, normal.data(), static_cast<int32_t>(normal.size()), &status);
  std::string out(normal_len * 3 + 4, '\0');
  int32_t out_len = 0;
  u_strToUTF8(out.data(), static_cast<int32_t>(out.size()), &out_len, normal.data(), normal_len, &status);
  if (U_FAILURE(status)) throw Error(ExitCode::kInternal, std::string(form) + " normalization failed (ICU)");
  out.resize(out_len);
  return out;
}

}  // namespace

std::string nfc(std::string_view text) {
  bool ascii = true;
  for (char c : text) ascii = ascii && static_cast<unsigned char>(c) < 0x80;
  if (ascii) return std::string(text);
  UErrorCode status = U_ZERO_ERROR;
  const UNormalizer2* norm = unorm2_getNFCInstance(&status);
  return icu_normalize(text, norm, status, "NFC");
}

std::string nfkc_casefold(std::string_view text) {
  UErrorCode status = U_ZERO_ERROR;
  const UNormalizer2* norm = unorm2_getNFKCCasefoldInstance(&status);
  return icu_normalize(text, norm, status, "NFKC_Casefold");
}

// ---- Regex -------------------------------------------------------------------------------------
namespace {

// tokenizer.json patterns are written for Oniguruma, whose \s is exactly Unicode White_Space
// (PCRE2's UCP \s differs by version, e.g. U+0085, U+180E); \s and \S are spelled out as classes.
constexpr const char* kWhiteSpace =
    "\\x{9}-\\x{d}\\x{20}\\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}\\x{202f}"
    "\\x{205f}\\x{3000}";

std::string onig_compatible(const std::string& pattern) {
  std::string out;
  bool in_class = false;  // inside [...] (POSIX [:classes:] are not handled)
  for (size_t i = 0; i < pattern.size(); ++i) {
    char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      char e = pattern[++i];
      if (e == 's')
        out += in_class ? std::string(kWhiteSpace) : "[" + std::string(kWhiteSpace) + "]";
      else if (e == 'S' && !in_class)
        out += "[^" + std::string(kWhiteSpace) + "]";
      else
        out.append({c, e});
      continue;
    }
    if (c == '[' && !in_class) {
      in_class = true;
      out += c;
      if (i + 1 < pattern.size() && pattern[i + 1] == '^') out += pattern[++i];
      if (i + 1 < pattern.size() && pattern[i + 1] == ']') out += pattern[++i];  // literal ]
      continue;
    }
    if (c == ']' && in_class) in_class = false;
    out += c;
  }
  return out;
}

}  // namespace

Regex::Regex(const std::string& source) {
  const std::string pattern = onig_compatible(source);
  int error = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), PCRE2_UTF | PCRE2_UCP,
                                   &error, &offset, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error, message, sizeof(message));
    fail_input("regex /" + pattern + "/ does not compile at offset " + std::to_string(offset) + ": " +
               reinterpret_cast<const char*>(message));
  }
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // optional speed-up; falls back when unavailable
  code_ = code;
}

Regex::~Regex() { pcre2_code_free(static_cast<pcre2_code*>(code_)); }

std::vector<std::pair<size_t, size_t>> Regex::find_all(std::string_view text) const {
  std::vector<std::pair<size_t, size_t>> spans;
  auto* code = static_cast<pcre2_code*>(code_);
  pcre2_match_data* data = pcre2_match_data_create_from_pattern(code, nullptr);
  auto subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t start = 0;
  while (start <= text.size()) {
    int rc = pcre2_match(code, subject, text.size(), start, PCRE2_NO_UTF_CHECK, data, nullptr);
    if (rc < 0) break;
    PCRE2_SIZE* ov = pcre2_get_ovector_pointer(data);
    size_t s = ov[0], e = ov[1];
    if (e == s) {  // empty match: keep it unless it touches the previous match, step one char
      if (spans.empty() || spans.back().second != s) spans.emplace_back(s, e);
      if (s >= text.size()) break;
      start = s + utf8_len(static_cast<unsigned char>(text[s]));
      continue;
    }
    spans.emplace_back(s, e);
    start = e;
  }
  pcre2_match_data_free(data);
  return spans;
}

}  // namespace sdmlm::tok
