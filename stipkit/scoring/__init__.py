"""Scoring: the one metrics function (:mod:`~stipkit.scoring.metrics`: MSE, PSNR, SSIM, LPIPS),
LPIPS' AlexNet weights (:mod:`~stipkit.scoring.lpips_weights`), and the evaluation protocol
beside copy-last (:mod:`~stipkit.scoring.evaluate`)."""
