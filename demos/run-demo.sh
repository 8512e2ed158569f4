#!/bin/sh
# Placeholder until the overload demonstration lands.
echo "sluice: the overload demo is not there yet; run 'make check'."
