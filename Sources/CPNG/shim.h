// libpng headers, used by the C shim target CImageCodecs.
#include <png.h>
