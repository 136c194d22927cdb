# Base tools every part of the build uses.
APT_PACKAGES+=(ca-certificates git pkg-config build-essential python3)
