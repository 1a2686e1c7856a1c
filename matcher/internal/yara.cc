#include "matcher/internal/yara.h"
