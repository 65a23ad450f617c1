"""The lab: experiments that reproduce each technique's result, the training engine, run
folders and the HTML report. The core (everything outside ``smallml.lab``) never imports it."""
