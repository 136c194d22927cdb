#include "CEROFSSupport.h"
