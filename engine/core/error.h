#pragma once
// The one exception type the engine throws. The message names what failed (file, tensor, field)
// and, where there is one, what the user can do about it.
#include <stdexcept>
#include <string>

namespace tessera {

class Error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

}  // namespace tessera
