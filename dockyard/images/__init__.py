"""Stage 2: images. Spec + Variant + site settings → BuildPlan (Dockerfile, context files, content tag) → image.

`make_plan` (plan.py) is the way in: it asks render.py for the Dockerfile and context.py for the files
(CA certificates, wheels, kit), and hashes them into the tag (naming.py). build.py turns a plan into an
image; inventory.py says whether a plan's image exists.
"""
