"""Host-independent SV4D 2.0 library: network, conditioning, sampling, schedules and the 4D fitter.

Never imports ComfyUI. Heavy optional dependencies (kornia, trimesh, scikit-image, tinycudann) are imported
inside the functions that need them, so `import sv4d_lib.<module>` stays cheap.
"""
