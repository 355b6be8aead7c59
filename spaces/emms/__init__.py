"""Not used by the Space: this file lets setuptools ship the folder inside hf-emms as ``hf_emms._emms_space``,
so that ``hf_emms.load_metric()`` finds ``emms.py`` in editable installs and built wheels alike."""
