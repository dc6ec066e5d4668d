# The instructor's Formgrader (`make formgrader`, autograder/student/lab.py): JUPYTER_CONFIG_DIR points
# here, and the server runs in the course folder, whose nbgrader_config.py loads the course's.
import os

c = get_config()  # noqa: F821

c.ServerApp.jpserver_extensions = {
    "nbgrader.server_extensions.formgrader": True,
    "nbgrader.server_extensions.validate_assignment": False,
    "nbgrader.server_extensions.assignment_list": False,
    "nbgrader.server_extensions.course_list": False,
}
if os.environ.get("VITCOURSE_LAB_CHECKPOINTS"):
    c.FileContentsManager.checkpoints_kwargs = {"root_dir": os.environ["VITCOURSE_LAB_CHECKPOINTS"]}
    # Makes the folder for each notebook folder there (else they go to a shared temporary folder).
    c.FileContentsManager.checkpoints_class = "autograder.student.lab.CourseCheckpoints"
    # jupyter-lsp's copies of open documents (for a language server, if one is installed).
    c.LanguageServerManager.virtual_documents_dir = os.path.join(
        os.path.dirname(os.environ["VITCOURSE_LAB_CHECKPOINTS"]), "virtual_documents")
