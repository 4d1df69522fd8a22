"""fimaq: post-training quantization of vision-transformer detectors."""
