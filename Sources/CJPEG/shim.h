// libjpeg(-turbo) headers, used by the C shim target CImageCodecs.
#include <stdio.h>
#include <jpeglib.h>
