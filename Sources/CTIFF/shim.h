// libtiff headers, used by the C shim target CImageCodecs.
#include <tiffio.h>
