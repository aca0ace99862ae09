"""The analyses the pages show, each beside its SVG renderer, on any loaded model:

    figure2.py, figure2_svg.py          the β-VAE paper's Figure 2: latents against factors
    compression.py, compression_svg.py  a latent code as a compressed file, against JPEG
    denoise.py                          corrupt an image, reconstruct it, measure what came back
    quality.py                          PSNR, SSIM, MS-SSIM, gradient energy (sharpness)

They sit above app/inference and app/metrics and below app/web: none of them knows HTTP.
"""
