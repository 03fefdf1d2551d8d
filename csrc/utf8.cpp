#include "utf8.h"

#include <cstdint>

namespace llamabind {

std::string valid_utf8(const std::string & bytes) {
    static constexpr uint32_t min_code_point[] = {0, 0, 0x80, 0x800, 0x10000};  // by sequence length
    std::string out;
    out.reserve(bytes.size());
    size_t i = 0;
    while (i < bytes.size()) {
        const auto lead = static_cast<unsigned char>(bytes[i]);
        const size_t n = lead < 0x80 ? 1 : (lead >> 5) == 0x6 ? 2 : (lead >> 4) == 0xE ? 3 : (lead >> 3) == 0x1E ? 4 : 0;
        bool valid = n > 0 && i + n <= bytes.size();
        uint32_t code_point = lead & (0x7Fu >> n);
        for (size_t k = 1; valid && k < n; ++k) {
            const auto next = static_cast<unsigned char>(bytes[i + k]);
            valid = (next & 0xC0) == 0x80;
            code_point = (code_point << 6) | (next & 0x3Fu);
        }
        if (valid && n > 1) {
            valid = code_point >= min_code_point[n] && code_point <= 0x10FFFF && (code_point < 0xD800 || code_point > 0xDFFF);
        }
        if (valid) {
            out.append(bytes, i, n);
            i += n;
        } else {
            out += "\xEF\xBF\xBD";
            ++i;
        }
    }
    return out;
}

}  // namespace llamabind
